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
