//! The remote-write decoders: a body as snappy (with the ingester's bounds on the declared
//! length), and as an already decompressed protobuf, through the borrowed `WriteRequestView`
//! and label validation, and as a remote write 2.0 request (the direct view, and the
//! translation to 1.0, which must always be a valid 1.0 request with the same samples).
//! Anything may be refused; nothing may panic or allocate unboundedly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muninn_ingester::validate::{Limits, validate_labels};
use muninn_proto::write_view::WriteRequestView;

fn decode(body: &[u8]) {
    let Ok(view) = WriteRequestView::decode(body) else {
        return;
    };
    let limits = Limits::default();
    let mut labels = Vec::new();
    for s in &view.series {
        let _ = validate_labels(view.series_labels(s), &limits, &mut labels);
        for sample in view.series_samples(s) {
            std::hint::black_box(sample.timestamp_ms);
        }
    }
    for m in &view.metadata {
        std::hint::black_box(m.family);
    }
}

fn decode_v2(body: &[u8]) {
    let direct = muninn_proto::write_v2::decode_view(body);
    let mut v1 = Vec::new();
    match muninn_proto::write_v2::translate(body, &mut v1) {
        Ok(counts) => {
            let view = WriteRequestView::decode(&v1).expect("a translation is a valid 1.0 request");
            assert_eq!(view.samples.len() as u64, counts.samples);
            if let Ok((d, _)) = direct {
                assert_eq!(d.samples, view.samples, "both paths read the same samples");
            }
        }
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut buf = Vec::new();
    if let Ok(n) = muninn_ingester::push::decompress(data, 1 << 20, &mut buf) {
        decode(&buf[..n]);
    }
    decode(data);
    decode_v2(data);
});
