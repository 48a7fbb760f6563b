//! The storage the query engine reads: anything that selects series by matchers and time
//! range, whole ([`SeriesSource::select`]) or as a stream in label order
//! ([`SeriesSource::select_stream`]): ingesters (over gRPC), blocks, and their merge.

use futures::future::BoxFuture;
use muninn_proto::tenant::TenantId;
use muninn_storage::labels::Labels;
use muninn_storage::matcher::Matcher;

pub use muninn_storage::chunk::FloatChunk;

use crate::promql::value::Hist;
use crate::{Error, Result};

/// One series with its samples in the requested range, oldest first, one per timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Samples,
    /// Native histogram samples in range, oldest first (staleness markers included).
    pub histograms: Vec<(i64, Hist)>,
}

/// Samples, either decoded or still as XOR chunks (about 1–2 bytes a sample instead of 16),
/// decoded one series at a time by whoever needs them.
#[derive(Clone, Debug, PartialEq)]
pub enum Samples {
    Raw(Vec<(i64, f64)>),
    /// Non-overlapping chunks in time order; samples outside `[mint, maxt]` are skipped.
    Chunks {
        chunks: Vec<FloatChunk>,
        mint: i64,
        maxt: i64,
    },
}

impl Default for Samples {
    fn default() -> Self {
        Samples::Raw(Vec::new())
    }
}

impl Samples {
    /// Decodes into `out` (cleared first).
    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) -> Result<()> {
        out.clear();
        match self {
            Samples::Raw(v) => out.extend_from_slice(v),
            Samples::Chunks { chunks, mint, maxt } => {
                for c in chunks {
                    c.decode_range(*mint, *maxt, out)
                        .map_err(|e| Error::Corrupt(format!("chunk: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// The decoded samples.
    pub fn to_vec(&self) -> Result<Vec<(i64, f64)>> {
        let mut v = Vec::new();
        self.decode_into(&mut v)?;
        Ok(v)
    }
}

/// Native histograms of histogram chunks (`(encoding, bytes)`, any order) in `[mint, maxt]`,
/// as float histograms with their read-back hints, sorted by time; a timestamp held by
/// several chunks (replica copies) is kept once, from the first.
pub fn decode_hist_chunks(
    chunks: &[(u8, bytes::Bytes)],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(i64, Hist)>> {
    let mut out = Vec::new();
    for (enc, data) in chunks {
        let decoded = muninn_storage::chunk::histogram::decode_chunk(*enc, data)
            .map_err(|e| Error::Corrupt(format!("histogram chunk: {e}")))?;
        out.extend(
            decoded
                .into_iter()
                .filter(|(t, _)| *t >= mint && *t <= maxt)
                .map(|(t, h)| (t, Hist::new(h.to_float()))),
        );
    }
    out.sort_by_key(|x| x.0);
    out.dedup_by_key(|x| x.0);
    Ok(out)
}

/// Metadata of one metric family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyMeta {
    pub family: String,
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

/// Series in label order, one at a time, as a store produces them.
pub type SeriesStream<'a> = futures::stream::BoxStream<'a, Result<SeriesData>>;

/// Read access to one tenant's series.
pub trait SeriesSource: Send + Sync {
    /// As [`SeriesSource::select`] (samples included), series by series in label order, so
    /// that a consumer holds one series at a time instead of the whole answer. Stores that
    /// cannot stream answer with their whole selection.
    fn select_stream<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<SeriesStream<'a>>> {
        Box::pin(async move {
            let all = self.select(tenant, matchers, mint, maxt, false).await?;
            let s: SeriesStream<'a> = Box::pin(futures::stream::iter(all.into_iter().map(Ok)));
            Ok(s)
        })
    }

    /// Series matching every matcher with samples in `[mint, maxt]`, sorted by labels.
    /// With `labels_only`, `samples` is left empty.
    fn select<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
        labels_only: bool,
    ) -> BoxFuture<'a, Result<Vec<SeriesData>>>;

    /// Label names of series matching `matchers` (all series if empty) in range, sorted.
    fn label_names<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<Vec<String>>>;

    /// Values of label `name` over matching series in range, sorted.
    fn label_values<'a>(
        &'a self,
        tenant: &'a TenantId,
        name: &'a str,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<Vec<String>>>;

    /// Metric metadata, optionally of one family.
    fn metadata<'a>(
        &'a self,
        tenant: &'a TenantId,
        family: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<FamilyMeta>>>;
}
