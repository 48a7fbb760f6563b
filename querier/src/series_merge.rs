//! Merging series streams: several sources' streams, each in label order, become one stream
//! in label order, the copies of a series (replicas, or head and blocks) combined into one.
//! Only the head of each stream is held.

use futures::StreamExt;

use crate::Result;
use crate::store::{Samples, SeriesData, SeriesStream};

/// How two copies of one series become one.
pub type Combine = fn(SeriesData, SeriesData) -> Result<SeriesData>;

/// The merge of `streams` (each sorted by labels), copies combined with `combine`.
pub fn merge<'a>(streams: Vec<SeriesStream<'a>>, combine: Combine) -> SeriesStream<'a> {
    if streams.len() == 1 {
        return streams
            .into_iter()
            .next()
            .unwrap_or_else(|| Box::pin(futures::stream::empty()));
    }
    struct State<'a> {
        streams: Vec<SeriesStream<'a>>,
        heads: Vec<Option<SeriesData>>,
        started: bool,
        failed: bool,
    }
    let n = streams.len();
    let state = State {
        streams,
        heads: (0..n).map(|_| None).collect(),
        started: false,
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, move |mut st| async move {
        if st.failed {
            return None;
        }
        if !st.started {
            st.started = true;
            for i in 0..st.streams.len() {
                match st.streams[i].next().await {
                    Some(Ok(s)) => st.heads[i] = Some(s),
                    Some(Err(e)) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                    None => {}
                }
            }
        }
        // The smallest label set among the heads, then every copy of it.
        let first = st
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (i, h)))
            .min_by(|a, b| a.1.labels.cmp(&b.1.labels).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i)?;
        let mut out: Option<SeriesData> = None;
        for i in first..st.heads.len() {
            let same = match (&st.heads[i], &st.heads[first], &out) {
                (Some(h), _, Some(o)) => h.labels == o.labels,
                (Some(_), _, None) => i == first,
                _ => false,
            };
            if !same {
                continue;
            }
            let Some(h) = st.heads[i].take() else {
                continue;
            };
            out = Some(match out {
                None => h,
                Some(o) => match combine(o, h) {
                    Ok(c) => c,
                    Err(e) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                },
            });
            match st.streams[i].next().await {
                Some(Ok(s)) => {
                    // A source out of label order (an ingester of an older version answers in
                    // series-id order) would split copies apart: refused, never mis-merged.
                    if out.as_ref().is_some_and(|o| s.labels <= o.labels) {
                        st.failed = true;
                        return Some((
                            Err(crate::Error::Corrupt(format!(
                                "a source answered out of label order ({:?} after {:?}); are all ingesters upgraded?",
                                s.labels,
                                out.as_ref().map(|o| &o.labels)
                            ))),
                            st,
                        ));
                    }
                    st.heads[i] = Some(s);
                }
                Some(Err(e)) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
                None => {}
            }
        }
        out.map(|o| (Ok(o), st))
    }))
}

/// Two copies merged sample by sample: identical timestamps once (the first copy's).
pub fn combine_samples(mut a: SeriesData, b: SeriesData) -> Result<SeriesData> {
    let mut v = a.samples.to_vec()?;
    v.extend(b.samples.to_vec()?);
    v.sort_by_key(|x| x.0);
    v.dedup_by_key(|x| x.0);
    a.samples = Samples::Raw(v);
    if !b.histograms.is_empty() {
        a.histograms.extend(b.histograms);
        a.histograms.sort_by_key(|x| x.0);
        a.histograms.dedup_by_key(|x| x.0);
    }
    Ok(a)
}

/// Replica copies from ingesters: replicas that received the same samples cut the same
/// chunks, so identical chunk lists stay one undecoded copy; copies that differ (one replica
/// missed writes while down) are decoded and merged.
pub fn combine_replicas(a: SeriesData, b: SeriesData) -> Result<SeriesData> {
    if let (Samples::Chunks { chunks: ca, .. }, Samples::Chunks { chunks: cb, .. }) =
        (&a.samples, &b.samples)
        && ca == cb
    {
        let mut a = a;
        if !b.histograms.is_empty() {
            a.histograms.extend(b.histograms);
            a.histograms.sort_by_key(|x| x.0);
            a.histograms.dedup_by_key(|x| x.0);
        }
        return Ok(a);
    }
    combine_samples(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_storage::labels::Labels;

    fn s(name: &str, pts: &[(i64, f64)]) -> SeriesData {
        SeriesData {
            labels: Labels::from_pairs([("__name__", name)]),
            samples: Samples::Raw(pts.to_vec()),
            histograms: vec![],
        }
    }

    fn stream(v: Vec<SeriesData>) -> SeriesStream<'static> {
        Box::pin(futures::stream::iter(v.into_iter().map(Ok)))
    }

    #[tokio::test]
    async fn streams_merge_in_label_order_with_copies_combined() {
        let a = stream(vec![s("a", &[(1, 1.0)]), s("c", &[(1, 1.0), (3, 3.0)])]);
        let b = stream(vec![s("b", &[(2, 2.0)]), s("c", &[(2, 2.0), (3, 9.0)])]);
        let c = stream(vec![s("c", &[(4, 4.0)]), s("d", &[])]);
        let got: Vec<SeriesData> = merge(vec![a, b, c], combine_samples)
            .map(|r| r.unwrap())
            .collect()
            .await;
        let names: Vec<&str> = got
            .iter()
            .map(|s| s.labels.get("__name__").unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(
            got[2].samples.to_vec().unwrap(),
            vec![(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)],
            "copies merged, the first copy's sample kept at a shared timestamp"
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        let bad: SeriesStream<'static> = Box::pin(futures::stream::iter(vec![
            Ok(s("a", &[])),
            Err(crate::Error::Storage("gone".into())),
        ]));
        let got: Vec<Result<SeriesData>> =
            merge(vec![bad, stream(vec![s("b", &[])])], combine_samples)
                .collect()
                .await;
        assert!(got.iter().any(|r| r.is_err()));
        assert!(got.last().is_some_and(|r| r.is_err()));
    }

    #[tokio::test]
    async fn a_source_out_of_label_order_is_an_error() {
        let unsorted = stream(vec![s("b", &[]), s("a", &[])]);
        let got: Vec<Result<SeriesData>> =
            merge(vec![unsorted, stream(vec![s("c", &[])])], combine_samples)
                .collect()
                .await;
        assert!(
            got.last().is_some_and(|r| r
                .as_ref()
                .is_err_and(|e| e.to_string().contains("label order"))),
            "{got:?}"
        );
    }
}
