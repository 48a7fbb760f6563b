//! The remote-write decoder: a body as snappy (with the ingester's bounds on the declared
//! length), and as an already decompressed protobuf, through the borrowed `WriteRequestView`
//! and label validation. Anything may be refused; nothing may panic or allocate unboundedly.
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

fuzz_target!(|data: &[u8]| {
    let mut buf = Vec::new();
    if let Ok(n) = muninn_ingester::push::decompress(data, 1 << 20, &mut buf) {
        decode(&buf[..n]);
    }
    decode(data);
});
