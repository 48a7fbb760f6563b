//! Prometheus remote read, `POST /api/v1/read`: a snappy-compressed `ReadRequest` of queries
//! (time range and matchers), answered either as one snappy-compressed `ReadResponse` of raw
//! samples (`SAMPLES`, what Prometheus 2.x asks for) or as a stream of `ChunkedReadResponse`
//! frames of XOR and float-histogram chunks (`STREAMED_XOR_CHUNKS`), each framed as a
//! uvarint length, a big-endian CRC32 Castagnoli of the message, then the message.
//!
//! The tenant's query limits apply as for PromQL. Errors are plain text, as Prometheus's own
//! remote-read server answers them: 400 for a request that does not decode, a bad matcher or
//! too many samples; 503 when storage or ingesters fail or the query times out.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use muninn_proto::prometheus as pb;
use muninn_proto::tenant::TenantId;
use muninn_storage::chunk::xor::XorAppender;
use muninn_storage::chunk::{ENC_FLOAT_HISTOGRAM, ENC_XOR, SAMPLES_PER_CHUNK};
use muninn_storage::histogram::FloatHistogram;
use muninn_storage::matcher::{MatchOp, Matcher};
use prost::Message;

use crate::store::SeriesData;
use crate::{Error, Querier, Result};

/// Largest compressed request body accepted.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Most message bytes in one streamed frame (Prometheus's
/// `--storage.remote.read-max-bytes-in-frame` default).
pub const MAX_BYTES_IN_FRAME: usize = 1 << 20;

/// Content type of a streamed answer.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// The answer kind a client accepts first among those served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Samples,
    Streamed,
}

fn negotiate(req: &pb::ReadRequest) -> Result<Kind> {
    if req.accepted_response_types.is_empty() {
        return Ok(Kind::Samples);
    }
    for t in &req.accepted_response_types {
        match pb::read_request::ResponseType::try_from(*t) {
            Ok(pb::read_request::ResponseType::Samples) => return Ok(Kind::Samples),
            Ok(pb::read_request::ResponseType::StreamedXorChunks) => return Ok(Kind::Streamed),
            Err(_) => {}
        }
    }
    Err(Error::BadData(format!(
        "none of the accepted response types {:?} is supported",
        req.accepted_response_types
    )))
}

/// The matchers of one query, in our form.
fn matchers(q: &pb::Query) -> Result<Vec<Matcher>> {
    use pb::label_matcher::Type;
    q.matchers
        .iter()
        .map(|m| {
            let op = match Type::try_from(m.r#type) {
                Ok(Type::Eq) => MatchOp::Equal,
                Ok(Type::Neq) => MatchOp::NotEqual,
                Ok(Type::Re) => MatchOp::Regex,
                Ok(Type::Nre) => MatchOp::NotRegex,
                Err(_) => {
                    return Err(Error::BadData(format!(
                        "unknown matcher type {} for label {:?}",
                        m.r#type, m.name
                    )));
                }
            };
            Matcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| Error::BadData(e.to_string()))
        })
        .collect()
}

fn decode_request(body: &[u8]) -> Result<pb::ReadRequest> {
    // The size a snappy body declares is checked before anything is allocated for it.
    let len =
        snap::raw::decompress_len(body).map_err(|e| Error::BadData(format!("snappy: {e}")))?;
    if len > MAX_REQUEST_BYTES {
        return Err(Error::BadData(format!(
            "request of {len} bytes decompressed is over the limit of {MAX_REQUEST_BYTES}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| Error::BadData(format!("snappy: {e}")))?;
    let req = pb::ReadRequest::decode(raw.as_slice())
        .map_err(|e| Error::BadData(format!("ReadRequest: {e}")))?;
    for q in &req.queries {
        if q.start_timestamp_ms > q.end_timestamp_ms {
            return Err(Error::BadData(format!(
                "query start {} is after its end {}",
                q.start_timestamp_ms, q.end_timestamp_ms
            )));
        }
    }
    Ok(req)
}

fn error_text(e: &Error) -> Response {
    let status = match e {
        Error::BadData(_) => StatusCode::BAD_REQUEST,
        Error::Ingester { .. }
        | Error::IngestersUnavailable(_)
        | Error::Storage(_)
        | Error::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Unsupported(_) | Error::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Corrupt(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{e}\n"),
    )
        .into_response()
}

fn labels_pb(s: &SeriesData) -> Vec<pb::Label> {
    s.labels
        .iter()
        .map(|l| pb::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

fn spans_pb(spans: &[muninn_storage::histogram::Span]) -> Vec<pb::BucketSpan> {
    spans
        .iter()
        .map(|s| pb::BucketSpan {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

/// A float histogram in remote read's (and remote write's) message.
pub fn histogram_pb(t: i64, h: &FloatHistogram) -> pb::Histogram {
    use muninn_storage::histogram::CounterResetHint;
    let reset_hint = match h.hint {
        CounterResetHint::Unknown => pb::histogram::ResetHint::Unknown,
        CounterResetHint::Reset => pb::histogram::ResetHint::Yes,
        CounterResetHint::NotReset => pb::histogram::ResetHint::No,
        CounterResetHint::Gauge => pb::histogram::ResetHint::Gauge,
    };
    pb::Histogram {
        count: Some(pb::histogram::Count::CountFloat(h.count)),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: Some(pb::histogram::ZeroCount::ZeroCountFloat(h.zero_count)),
        negative_spans: spans_pb(&h.negative_spans),
        negative_deltas: vec![],
        negative_counts: h.negative_buckets.clone(),
        positive_spans: spans_pb(&h.positive_spans),
        positive_deltas: vec![],
        positive_counts: h.positive_buckets.clone(),
        reset_hint: reset_hint as i32,
        timestamp: t,
        custom_values: h.custom_values.clone(),
    }
}

/// One series as raw samples.
fn series_samples(s: &SeriesData) -> Result<pb::TimeSeries> {
    Ok(pb::TimeSeries {
        labels: labels_pb(s),
        samples: s
            .samples
            .to_vec()?
            .into_iter()
            .map(|(timestamp, value)| pb::Sample { value, timestamp })
            .collect(),
        exemplars: vec![],
        histograms: s
            .histograms
            .iter()
            .map(|(t, h)| histogram_pb(*t, h))
            .collect(),
    })
}

/// One series as chunks: floats in XOR chunks of at most 120 samples, histograms in float
/// histogram chunks cut where Prometheus's appender cuts; both in time order.
fn series_chunks(s: &SeriesData) -> Result<Vec<pb::Chunk>> {
    let mut out = Vec::new();
    let samples = s.samples.to_vec()?;
    for part in samples.chunks(usize::from(SAMPLES_PER_CHUNK)) {
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            continue;
        };
        let mut a = XorAppender::with_capacity(part.len() * 2 + 16);
        for (t, v) in part {
            a.append(*t, *v);
        }
        out.push(pb::Chunk {
            min_time_ms: first.0,
            max_time_ms: last.0,
            r#type: i32::from(ENC_XOR),
            data: Bytes::from(a.into_bytes()),
        });
    }
    if !s.histograms.is_empty() {
        let hs: Vec<_> = s
            .histograms
            .iter()
            .map(|(t, h)| {
                let h = muninn_storage::histogram::HistSample::Float((**h).clone());
                (*t, h)
            })
            .collect();
        for (enc, min_t, max_t, data) in muninn_storage::block::cell::hist_chunks(&hs) {
            debug_assert_eq!(enc, ENC_FLOAT_HISTOGRAM);
            out.push(pb::Chunk {
                min_time_ms: min_t,
                max_time_ms: max_t,
                r#type: i32::from(enc),
                data: Bytes::from(data),
            });
        }
        out.sort_by_key(|c| c.min_time_ms);
    }
    Ok(out)
}

/// Appends one frame: uvarint length, big-endian CRC32 Castagnoli, message.
pub fn write_frame(msg: &pb::ChunkedReadResponse, out: &mut Vec<u8>) {
    let body = msg.encode_to_vec();
    prost::encoding::encode_varint(body.len() as u64, out);
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &body) as u32;
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&body);
}

/// The frames of every query's series, built as they are read: several series per frame, a
/// series' chunks split over several frames (each repeating its labels) when they exceed
/// [`MAX_BYTES_IN_FRAME`]. Series are dropped once framed.
pub struct Frames {
    queries: std::iter::Enumerate<std::vec::IntoIter<Vec<SeriesData>>>,
    series: std::vec::IntoIter<SeriesData>,
    query_index: i64,
    /// Series (or parts of one) waiting for the frame to fill.
    frame: Vec<pb::ChunkedSeries>,
    size: usize,
    /// Chunks of the series being framed that did not fit the last frame.
    pending: Option<(Vec<pb::Label>, usize, std::vec::IntoIter<pb::Chunk>)>,
    failed: bool,
}

impl Frames {
    pub fn new(results: Vec<Vec<SeriesData>>) -> Self {
        Self {
            queries: results.into_iter().enumerate(),
            series: Vec::new().into_iter(),
            query_index: 0,
            frame: vec![],
            size: 0,
            pending: None,
            failed: false,
        }
    }

    fn take_frame(&mut self) -> Bytes {
        let msg = pb::ChunkedReadResponse {
            chunked_series: std::mem::take(&mut self.frame),
            query_index: self.query_index,
        };
        let mut buf = Vec::with_capacity(self.size + 16);
        write_frame(&msg, &mut buf);
        self.size = 0;
        Bytes::from(buf)
    }

    /// Adds the pending series' chunks to the frame; a full frame is returned.
    fn fill(&mut self) -> Option<Bytes> {
        let (labels, label_bytes, mut chunks) = self.pending.take()?;
        let mut cur: Vec<pb::Chunk> = vec![];
        while let Some(c) = chunks.next() {
            let c_size = c.data.len() + 32;
            let extra = if cur.is_empty() { label_bytes } else { 0 };
            let fits = self.size + extra + c_size <= MAX_BYTES_IN_FRAME;
            if !fits && (!cur.is_empty() || !self.frame.is_empty()) {
                if !cur.is_empty() {
                    self.frame.push(pb::ChunkedSeries {
                        labels: labels.clone(),
                        chunks: cur,
                    });
                }
                let rest = std::iter::once(c).chain(chunks).collect::<Vec<_>>();
                self.pending = Some((labels, label_bytes, rest.into_iter()));
                return Some(self.take_frame());
            }
            self.size += extra + c_size;
            cur.push(c);
        }
        if !cur.is_empty() {
            self.frame.push(pb::ChunkedSeries {
                labels,
                chunks: cur,
            });
        }
        None
    }
}

impl Iterator for Frames {
    type Item = Result<Bytes>;

    fn next(&mut self) -> Option<Result<Bytes>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(f) = self.fill() {
                return Some(Ok(f));
            }
            match self.series.next() {
                Some(s) => {
                    let chunks = match series_chunks(&s) {
                        Ok(c) => c,
                        Err(e) => {
                            self.failed = true;
                            return Some(Err(e));
                        }
                    };
                    let labels = labels_pb(&s);
                    let label_bytes = labels
                        .iter()
                        .map(|l| l.name.len() + l.value.len() + 4)
                        .sum();
                    self.pending = Some((labels, label_bytes, chunks.into_iter()));
                }
                None => {
                    // The query is done: its last frame (under its own index), then the next.
                    let last = (!self.frame.is_empty()).then(|| self.take_frame());
                    match self.queries.next() {
                        Some((i, series)) => {
                            self.series = series.into_iter();
                            self.query_index = i as i64;
                            if let Some(f) = last {
                                return Some(Ok(f));
                            }
                        }
                        None => return last.map(Ok),
                    }
                }
            }
        }
    }
}

/// Selects every query's series, counting samples against the query's sample limit.
async fn select_all(
    q: &Querier,
    tenant: &TenantId,
    req: &pb::ReadRequest,
) -> Result<Vec<Vec<SeriesData>>> {
    let store = q.store_for(tenant);
    let mut results = Vec::with_capacity(req.queries.len());
    let mut samples = 0usize;
    for query in &req.queries {
        let ms = matchers(query)?;
        let series = store
            .select(
                tenant,
                &ms,
                query.start_timestamp_ms,
                query.end_timestamp_ms,
                false,
            )
            .await?;
        if q.max_series > 0 && series.len() > q.max_series {
            return Err(Error::BadData(format!(
                "the query hit the max number of series limit (limit: {})",
                q.max_series
            )));
        }
        for s in &series {
            samples += match &s.samples {
                crate::store::Samples::Raw(v) => v.len(),
                crate::store::Samples::Chunks { .. } => s.samples.to_vec()?.len(),
            } + s.histograms.len();
        }
        if q.max_samples > 0 && samples > q.max_samples {
            return Err(Error::BadData(format!(
                "exceeded sample limit ({})",
                q.max_samples
            )));
        }
        results.push(series);
    }
    Ok(results)
}

/// `POST /api/v1/read`.
pub async fn read(State(q): State<Arc<Querier>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let tenant = match q.tenancy.auth.tenant(&parts.headers) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "remote read refused: no valid tenant");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"muninn\"")],
                format!("{e}\n"),
            )
                .into_response();
        }
    };
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            let e = Error::BadData(format!("reading the body: {e}"));
            tracing::warn!(%tenant, error = %e, "remote read refused");
            return error_text(&e);
        }
    };
    let r = async {
        let req = decode_request(&body)?;
        for query in &req.queries {
            super::check_query_length(
                &q,
                &tenant,
                query.start_timestamp_ms,
                query.end_timestamp_ms,
            )?;
        }
        let kind = negotiate(&req)?;
        let results = super::run_query(&q, "read", &tenant, q.timeout, async {
            select_all(&q, &tenant, &req).await
        })
        .await?;
        Ok::<_, Error>((kind, results))
    }
    .await;
    let (kind, results) = match r {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(%tenant, error = %e, "remote read failed");
            return error_text(&e);
        }
    };
    match kind {
        Kind::Samples => samples_response(&tenant, &results),
        Kind::Streamed => streamed_response(results),
    }
}

fn samples_response(tenant: &TenantId, results: &[Vec<SeriesData>]) -> Response {
    let built: Result<pb::ReadResponse> = (|| {
        let mut resp = pb::ReadResponse {
            results: Vec::with_capacity(results.len()),
        };
        for series in results {
            resp.results.push(pb::QueryResult {
                timeseries: series.iter().map(series_samples).collect::<Result<_>>()?,
            });
        }
        Ok(resp)
    })();
    let resp = match built {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%tenant, error = %e, "remote read failed");
            return error_text(&e);
        }
    };
    match snap::raw::Encoder::new().compress_vec(&resp.encode_to_vec()) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/x-protobuf"),
                (header::CONTENT_ENCODING, "snappy"),
            ],
            body,
        )
            .into_response(),
        Err(e) => error_text(&Error::Execution(format!("snappy: {e}"))),
    }
}

/// Streams the frames, encoding series as the body is read.
fn streamed_response(results: Vec<Vec<SeriesData>>) -> Response {
    let stream = futures::stream::iter(
        Frames::new(results).map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))),
    );
    (
        [(header::CONTENT_TYPE, STREAMED_CONTENT_TYPE)],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Samples;
    use muninn_storage::labels::Labels;

    fn series(name: &str, n: i64) -> SeriesData {
        SeriesData {
            labels: Labels::from_pairs([("__name__", name)]),
            samples: Samples::Raw((0..n).map(|i| (i * 15_000, i as f64 * 0.5)).collect()),
            histograms: vec![],
        }
    }

    /// Decodes frames as a remote-read client does, checking each CRC.
    fn read_frames(mut b: &[u8]) -> Vec<pb::ChunkedReadResponse> {
        let mut out = vec![];
        while !b.is_empty() {
            let len = prost::encoding::decode_varint(&mut b).unwrap() as usize;
            let crc = u32::from_be_bytes(b[..4].try_into().unwrap());
            let msg = &b[4..4 + len];
            assert_eq!(
                crc,
                crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, msg) as u32
            );
            out.push(pb::ChunkedReadResponse::decode(msg).unwrap());
            b = &b[4 + len..];
        }
        out
    }

    #[test]
    fn castagnoli_is_the_checksum() {
        // The CRC-32C check value.
        assert_eq!(
            crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, b"123456789"),
            0xe306_9283
        );
    }

    #[test]
    fn chunks_hold_120_samples_and_big_series_span_frames() {
        let small = series("a", 250);
        let chunks = series_chunks(&small).unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            (chunks[0].min_time_ms, chunks[2].max_time_ms),
            (0, 249 * 15_000)
        );
        let mut decoded = vec![];
        for c in &chunks {
            decoded.extend(muninn_storage::chunk::XorIter::new(&c.data));
        }
        assert_eq!(decoded, small.samples.to_vec().unwrap());

        // About 2.5 MB of chunks (random mantissas barely compress): three frames or more.
        let big = SeriesData {
            labels: Labels::from_pairs([("__name__", "big")]),
            samples: Samples::Raw(
                (0..300_000i64)
                    .map(|i| {
                        (
                            i * 1000,
                            f64::from_bits(
                                0x3ff0_0000_0000_0000
                                    ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 12,
                            ),
                        )
                    })
                    .collect(),
            ),
            histograms: vec![],
        };
        let results = vec![vec![series("q0", 3)], vec![small.clone(), big.clone()]];
        let all: Vec<u8> = Frames::new(results)
            .flat_map(|b| b.unwrap().to_vec())
            .collect();
        let msgs = read_frames(&all);
        assert!(msgs.len() >= 4, "{} frames", msgs.len());
        assert_eq!(msgs[0].query_index, 0);
        assert_eq!(msgs[0].chunked_series.len(), 1);
        let mut got: Vec<(String, Vec<(i64, f64)>)> = vec![];
        for m in &msgs[1..] {
            assert_eq!(m.query_index, 1);
            assert!(
                m.encoded_len() <= MAX_BYTES_IN_FRAME + 64,
                "{}",
                m.encoded_len()
            );
            for cs in &m.chunked_series {
                let name = cs.labels[0].value.clone();
                if got.last().is_none_or(|(n, _)| *n != name) {
                    got.push((name.clone(), vec![]));
                }
                for c in &cs.chunks {
                    got.last_mut()
                        .unwrap()
                        .1
                        .extend(muninn_storage::chunk::XorIter::new(&c.data));
                }
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, small.samples.to_vec().unwrap());
        let want = big.samples.to_vec().unwrap();
        assert_eq!(got[1].1.len(), want.len());
        assert!(
            got[1]
                .1
                .iter()
                .zip(&want)
                .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
        );
    }
}
