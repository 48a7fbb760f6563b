//! Borrowed decoding of a remote-write 1.0 `WriteRequest`.
//!
//! The hot path of ingestion: labels become `&[u8]` slices into the decompressed body and
//! samples land in one flat vector, so a request of N series costs three allocations, not one
//! per label. Field numbers follow `proto/types.proto`; unknown fields are skipped as protobuf
//! requires. Strings are not UTF-8 checked here; validation does that for what it keeps.

use crate::varint::read_uvarint;

/// Why a body is not a valid `WriteRequest`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("truncated protobuf message")]
    Truncated,
    #[error("invalid varint")]
    Varint,
    #[error("invalid wire type {0}")]
    WireType(u8),
    #[error("field {field} has wire type {got}, want {want}")]
    FieldType { field: u64, got: u8, want: u8 },
}

/// One label, borrowed from the request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelRef<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// One float sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleRef {
    pub timestamp_ms: i64,
    pub value: f64,
}

/// One series of the request: ranges into the view's flat label and sample vectors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesRef {
    pub labels: std::ops::Range<u32>,
    pub samples: std::ops::Range<u32>,
    pub exemplars: u32,
    /// This series' exemplars in [`WriteRequestView::exemplars`].
    pub exemplar_range: std::ops::Range<u32>,
    pub histograms: u32,
    /// This series' histograms in [`WriteRequestView::histograms`].
    pub histogram_range: std::ops::Range<u32>,
    /// Byte range of the encoded `TimeSeries` message in the decoded buffer, so a router can
    /// forward the series as it came.
    pub raw: std::ops::Range<u32>,
}

/// One exemplar: its labels in [`WriteRequestView::exemplar_labels`], value and timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct ExemplarRef {
    pub labels: std::ops::Range<u32>,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// One metric family's metadata, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataRef<'a> {
    /// `MetricMetadata.MetricType` as its protobuf number.
    pub metric_type: i32,
    pub family: &'a [u8],
    pub help: &'a [u8],
    pub unit: &'a [u8],
    /// The encoded `MetricMetadata` message.
    pub raw: &'a [u8],
}

/// A decoded `WriteRequest` borrowing from its body.
#[derive(Debug, Default)]
pub struct WriteRequestView<'a> {
    pub series: Vec<SeriesRef>,
    pub labels: Vec<LabelRef<'a>>,
    pub samples: Vec<SampleRef>,
    pub metadata: Vec<MetadataRef<'a>>,
    pub exemplars: Vec<ExemplarRef>,
    pub exemplar_labels: Vec<LabelRef<'a>>,
    /// Encoded `Histogram` messages, decoded on use ([`crate::histogram_wire`]).
    pub histograms: Vec<&'a [u8]>,
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

impl<'a> WriteRequestView<'a> {
    /// Decodes an uncompressed `WriteRequest`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut view = WriteRequestView {
            // A Prometheus series entry is rarely under 60 bytes; avoid regrowth.
            series: Vec::with_capacity(buf.len() / 64 + 1),
            labels: Vec::with_capacity(buf.len() / 24 + 1),
            samples: Vec::with_capacity(buf.len() / 64 + 1),
            metadata: Vec::new(),
            exemplars: Vec::new(),
            exemplar_labels: Vec::new(),
            histograms: Vec::new(),
        };
        let mut pos = 0;
        while pos < buf.len() {
            let (field, wt) = read_key(buf, &mut pos)?;
            match (field, wt) {
                (1, LEN) => {
                    let msg = read_len(buf, &mut pos)?;
                    let start = (msg.as_ptr() as usize - buf.as_ptr() as usize) as u32;
                    view.decode_series(msg)?;
                    if let Some(s) = view.series.last_mut() {
                        s.raw = start..start + msg.len() as u32;
                    }
                }
                (3, LEN) => {
                    let msg = read_len(buf, &mut pos)?;
                    view.metadata.push(decode_metadata(msg)?);
                }
                (1 | 3, _) => {
                    return Err(DecodeError::FieldType {
                        field,
                        got: wt,
                        want: LEN,
                    });
                }
                _ => skip(buf, &mut pos, wt)?,
            }
        }
        Ok(view)
    }

    /// Labels of one series.
    pub fn series_labels(&self, s: &SeriesRef) -> &[LabelRef<'a>] {
        &self.labels[s.labels.start as usize..s.labels.end as usize]
    }

    /// Exemplars of one series.
    pub fn series_exemplars(&self, s: &SeriesRef) -> &[ExemplarRef] {
        &self.exemplars[s.exemplar_range.start as usize..s.exemplar_range.end as usize]
    }

    /// Labels of one exemplar.
    pub fn exemplar_labels(&self, e: &ExemplarRef) -> &[LabelRef<'a>] {
        &self.exemplar_labels[e.labels.start as usize..e.labels.end as usize]
    }

    /// Encoded histograms of one series.
    pub fn series_histograms(&self, s: &SeriesRef) -> &[&'a [u8]] {
        &self.histograms[s.histogram_range.start as usize..s.histogram_range.end as usize]
    }

    /// Samples of one series.
    pub fn series_samples(&self, s: &SeriesRef) -> &[SampleRef] {
        &self.samples[s.samples.start as usize..s.samples.end as usize]
    }

    fn decode_series(&mut self, buf: &'a [u8]) -> Result<(), DecodeError> {
        let mut s = SeriesRef {
            labels: self.labels.len() as u32..0,
            samples: self.samples.len() as u32..0,
            exemplar_range: self.exemplars.len() as u32..0,
            histogram_range: self.histograms.len() as u32..0,
            ..Default::default()
        };
        let mut pos = 0;
        while pos < buf.len() {
            let (field, wt) = read_key(buf, &mut pos)?;
            match (field, wt) {
                (1, LEN) => {
                    let msg = read_len(buf, &mut pos)?;
                    self.labels.push(decode_label(msg)?);
                }
                (2, LEN) => {
                    let msg = read_len(buf, &mut pos)?;
                    self.samples.push(decode_sample(msg)?);
                }
                (3, LEN) => {
                    let msg = read_len(buf, &mut pos)?;
                    self.decode_exemplar(msg)?;
                    s.exemplars += 1;
                }
                (4, LEN) => {
                    self.histograms.push(read_len(buf, &mut pos)?);
                    s.histograms += 1;
                }
                (1..=4, _) => {
                    return Err(DecodeError::FieldType {
                        field,
                        got: wt,
                        want: LEN,
                    });
                }
                _ => skip(buf, &mut pos, wt)?,
            }
        }
        s.labels.end = self.labels.len() as u32;
        s.samples.end = self.samples.len() as u32;
        s.exemplar_range.end = self.exemplars.len() as u32;
        s.histogram_range.end = self.histograms.len() as u32;
        self.series.push(s);
        Ok(())
    }

    /// `Exemplar {labels = 1, value = 2, timestamp = 3}`.
    fn decode_exemplar(&mut self, buf: &'a [u8]) -> Result<(), DecodeError> {
        let start = self.exemplar_labels.len() as u32;
        let (mut value, mut timestamp_ms) = (0.0, 0);
        let mut pos = 0;
        while pos < buf.len() {
            let (field, wt) = read_key(buf, &mut pos)?;
            match (field, wt) {
                (1, LEN) => {
                    let msg = read_len(buf, &mut pos)?;
                    self.exemplar_labels.push(decode_label(msg)?);
                }
                (2, I64) => {
                    let b: [u8; 8] = buf
                        .get(pos..pos + 8)
                        .ok_or(DecodeError::Truncated)?
                        .try_into()
                        .map_err(|_| DecodeError::Truncated)?;
                    value = f64::from_le_bytes(b);
                    pos += 8;
                }
                (3, VARINT) => {
                    timestamp_ms = read_uvarint(buf, &mut pos).ok_or(DecodeError::Varint)? as i64;
                }
                _ => skip(buf, &mut pos, wt)?,
            }
        }
        self.exemplars.push(ExemplarRef {
            labels: start..self.exemplar_labels.len() as u32,
            value,
            timestamp_ms,
        });
        Ok(())
    }
}

/// Appends a length-delimited field (`field`, wire type 2) holding `bytes` to `out`.
pub fn put_len_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    crate::varint::put_uvarint(out, (u64::from(field) << 3) | u64::from(LEN));
    crate::varint::put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends to `out` the encoded `TimeSeries` `series` with every label named `name` left out
/// (the HA tracker's replica label); all other fields are copied as they are.
pub fn write_series_without_label(
    series: &[u8],
    name: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let mut pos = 0;
    while pos < series.len() {
        let start = pos;
        let (field, wt) = read_key(series, &mut pos)?;
        if (field, wt) == (1, LEN) {
            let msg = read_len(series, &mut pos)?;
            if decode_label(msg)?.name == name {
                continue;
            }
        } else {
            skip(series, &mut pos, wt)?;
        }
        out.extend_from_slice(&series[start..pos]);
    }
    Ok(())
}

#[inline]
pub(crate) fn read_key(buf: &[u8], pos: &mut usize) -> Result<(u64, u8), DecodeError> {
    // Fast path: one-byte keys are all the fields we know.
    if let Some(&b) = buf.get(*pos)
        && b < 0x80
    {
        *pos += 1;
        return Ok((u64::from(b >> 3), b & 7));
    }
    let k = read_uvarint(buf, pos).ok_or(DecodeError::Varint)?;
    Ok((k >> 3, (k & 7) as u8))
}

#[inline]
pub(crate) fn read_len<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], DecodeError> {
    let n = if let Some(&b) = buf.get(*pos)
        && b < 0x80
    {
        *pos += 1;
        b as usize
    } else {
        let n = read_uvarint(buf, pos).ok_or(DecodeError::Truncated)?;
        usize::try_from(n).map_err(|_| DecodeError::Truncated)?
    };
    let end = pos.checked_add(n).ok_or(DecodeError::Truncated)?;
    let s = buf.get(*pos..end).ok_or(DecodeError::Truncated)?;
    *pos = end;
    Ok(s)
}

pub(crate) fn skip(buf: &[u8], pos: &mut usize, wt: u8) -> Result<(), DecodeError> {
    let n = match wt {
        VARINT => {
            read_uvarint(buf, pos).ok_or(DecodeError::Varint)?;
            0
        }
        I64 => 8,
        LEN => {
            read_len(buf, pos)?;
            0
        }
        I32 => 4,
        other => return Err(DecodeError::WireType(other)),
    };
    if buf.len() - *pos < n {
        return Err(DecodeError::Truncated);
    }
    *pos += n;
    Ok(())
}

#[inline]
fn decode_label(buf: &[u8]) -> Result<LabelRef<'_>, DecodeError> {
    let mut l = LabelRef {
        name: &[],
        value: &[],
    };
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wt) = read_key(buf, &mut pos)?;
        match (field, wt) {
            (1, LEN) => l.name = read_len(buf, &mut pos)?,
            (2, LEN) => l.value = read_len(buf, &mut pos)?,
            (1 | 2, _) => {
                return Err(DecodeError::FieldType {
                    field,
                    got: wt,
                    want: LEN,
                });
            }
            _ => skip(buf, &mut pos, wt)?,
        }
    }
    Ok(l)
}

#[inline]
pub(crate) fn decode_sample(buf: &[u8]) -> Result<SampleRef, DecodeError> {
    let mut s = SampleRef {
        timestamp_ms: 0,
        value: 0.0,
    };
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wt) = read_key(buf, &mut pos)?;
        match (field, wt) {
            (1, I64) => {
                let b: [u8; 8] = buf
                    .get(pos..pos + 8)
                    .ok_or(DecodeError::Truncated)?
                    .try_into()
                    .map_err(|_| DecodeError::Truncated)?;
                s.value = f64::from_le_bytes(b);
                pos += 8;
            }
            (2, VARINT) => {
                s.timestamp_ms = read_uvarint(buf, &mut pos).ok_or(DecodeError::Varint)? as i64;
            }
            (1, _) => {
                return Err(DecodeError::FieldType {
                    field,
                    got: wt,
                    want: I64,
                });
            }
            (2, _) => {
                return Err(DecodeError::FieldType {
                    field,
                    got: wt,
                    want: VARINT,
                });
            }
            _ => skip(buf, &mut pos, wt)?,
        }
    }
    Ok(s)
}

fn decode_metadata(buf: &[u8]) -> Result<MetadataRef<'_>, DecodeError> {
    let mut m = MetadataRef {
        metric_type: 0,
        family: &[],
        help: &[],
        unit: &[],
        raw: buf,
    };
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wt) = read_key(buf, &mut pos)?;
        match (field, wt) {
            (1, VARINT) => {
                m.metric_type = read_uvarint(buf, &mut pos).ok_or(DecodeError::Varint)? as i32
            }
            (2, LEN) => m.family = read_len(buf, &mut pos)?,
            (4, LEN) => m.help = read_len(buf, &mut pos)?,
            (5, LEN) => m.unit = read_len(buf, &mut pos)?,
            (1 | 2 | 4 | 5, _) => {
                return Err(DecodeError::FieldType {
                    field,
                    got: wt,
                    want: LEN,
                });
            }
            _ => skip(buf, &mut pos, wt)?,
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{
        Label, MetricMetadata, Sample, TimeSeries, WriteRequest, metric_metadata::MetricType,
    };
    use prost::Message;

    fn request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![
                        Label {
                            name: "__name__".into(),
                            value: "up".into(),
                        },
                        Label {
                            name: "job".into(),
                            value: "x".repeat(200),
                        },
                    ],
                    samples: vec![
                        Sample {
                            value: 1.0,
                            timestamp: 1000,
                        },
                        Sample {
                            value: f64::NAN,
                            timestamp: -5,
                        },
                    ],
                    ..Default::default()
                },
                TimeSeries::default(),
            ],
            metadata: vec![MetricMetadata {
                r#type: MetricType::Counter as i32,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        }
    }

    #[test]
    fn matches_prost() {
        let req = request();
        let bytes = req.encode_to_vec();
        let v = WriteRequestView::decode(&bytes).unwrap();
        assert_eq!(v.series.len(), 2);
        let l = v.series_labels(&v.series[0]);
        assert_eq!(l[0].name, b"__name__");
        assert_eq!(l[1].value, "x".repeat(200).as_bytes());
        let s = v.series_samples(&v.series[0]);
        assert_eq!(
            s[0],
            SampleRef {
                timestamp_ms: 1000,
                value: 1.0
            }
        );
        assert_eq!(s[1].timestamp_ms, -5);
        assert!(s[1].value.is_nan());
        assert!(v.series_labels(&v.series[1]).is_empty());
        assert_eq!(v.metadata[0].metric_type, 1);
        assert_eq!(v.metadata[0].family, b"up");
        // Each series' raw range is exactly its encoded message.
        for (s, ts) in v.series.iter().zip(&req.timeseries) {
            assert_eq!(
                &bytes[s.raw.start as usize..s.raw.end as usize],
                ts.encode_to_vec()
            );
        }
        assert_eq!(v.metadata[0].raw, req.metadata[0].encode_to_vec());
    }

    #[test]
    fn series_without_a_label() {
        let req = request();
        let bytes = req.encode_to_vec();
        let v = WriteRequestView::decode(&bytes).unwrap();
        let raw = &bytes[v.series[0].raw.start as usize..v.series[0].raw.end as usize];
        let mut out = vec![];
        write_series_without_label(raw, b"__name__", &mut out).unwrap();
        let mut want = req.timeseries[0].clone();
        want.labels.retain(|l| l.name != "__name__");
        // Compared encoded: the samples hold a NaN.
        assert_eq!(out, want.encode_to_vec());
        let mut framed = vec![];
        put_len_field(&mut framed, 1, &out);
        let again = WriteRequest::decode(&framed[..]).unwrap();
        assert_eq!(again.timeseries[0].encode_to_vec(), want.encode_to_vec());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = request().encode_to_vec();
        for n in 0..bytes.len() {
            // A prefix may happen to be valid protobuf; it must never panic.
            let _ = WriteRequestView::decode(&bytes[..n]);
        }
        assert_eq!(
            WriteRequestView::decode(&[0x0a, 0x05, 0x01]).unwrap_err(),
            DecodeError::Truncated
        );
        assert!(WriteRequestView::decode(&[0x0f]).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift: deterministic garbage, plus mutations of a valid message.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let valid = request().encode_to_vec();
        for i in 0..20_000 {
            let mut b: Vec<u8> = if i % 2 == 0 {
                (0..(next() % 64)).map(|_| next() as u8).collect()
            } else {
                valid.clone()
            };
            if !b.is_empty() {
                for _ in 0..3 {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
            }
            let _ = WriteRequestView::decode(&b);
        }
    }
}
