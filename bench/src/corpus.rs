//! Reading the remote-write corpus: `u32 LE length | snappy body` records.

use anyhow::Context;
use muninn_proto::prometheus::WriteRequest;
use prost::Message;

/// The raw bodies, as they came over the wire.
pub fn read(path: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path)?;
    let mut out = vec![];
    let mut pos = 0;
    while pos + 4 <= data.len() {
        let n =
            u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        pos += 4;
        let body = data.get(pos..pos + n).context("truncated corpus record")?;
        out.push(body.to_vec());
        pos += n;
    }
    Ok(out)
}

/// Every body decoded into owned prost messages.
pub fn decode_all(bodies: &[Vec<u8>]) -> anyhow::Result<Vec<WriteRequest>> {
    bodies
        .iter()
        .map(|b| {
            let raw = snap::raw::Decoder::new().decompress_vec(b)?;
            Ok(WriteRequest::decode(&raw[..])?)
        })
        .collect()
}

/// Label pairs of a series, in request order.
pub type LabelPairs = Vec<(String, String)>;

/// Every series of the requests with its samples, time-ordered, one per timestamp.
pub fn series(reqs: &[WriteRequest]) -> std::collections::BTreeMap<LabelPairs, Vec<(i64, f64)>> {
    let mut series: std::collections::BTreeMap<LabelPairs, Vec<(i64, f64)>> = Default::default();
    for r in reqs {
        for ts in &r.timeseries {
            let key = ts
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            series
                .entry(key)
                .or_default()
                .extend(ts.samples.iter().map(|s| (s.timestamp, s.value)));
        }
    }
    for v in series.values_mut() {
        v.sort_by_key(|s| s.0);
        v.dedup_by_key(|s| s.0);
    }
    series
}

/// The distinct label sets of the corpus, sorted: the shapes benchmarks copy to make more series.
pub fn label_shapes(reqs: &[WriteRequest]) -> Vec<Vec<muninn_proto::prometheus::Label>> {
    let mut shapes: Vec<Vec<muninn_proto::prometheus::Label>> = reqs
        .iter()
        .flat_map(|r| r.timeseries.iter().map(|t| t.labels.clone()))
        .collect();
    shapes.sort_by(|a, b| {
        a.iter()
            .map(|l| (&l.name, &l.value))
            .cmp(b.iter().map(|l| (&l.name, &l.value)))
    });
    shapes.dedup();
    shapes
}
