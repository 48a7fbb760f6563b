//! PromQL parse + eval: the input is a query (bytes as text), parsed with Muninn's bounds
//! (nesting depth) and evaluated as an instant and a range query over a small in-memory store
//! with Muninn's limits (samples, memory, a deadline), on a large-stack thread as the querier
//! runs queries. Errors are fine; a panic, a stack overflow or runaway memory is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muninn_proto::tenant::TenantId;
use muninn_querier::mem_store::MemStore;
use muninn_querier::promql::{self, EngineOptions};
use muninn_storage::labels::Labels;

fn store() -> MemStore {
    let mut s = MemStore::default();
    for (job, inst) in [("api", "a"), ("api", "b"), ("web", "a")] {
        let l = Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("instance", inst),
            ("job", job),
        ]);
        s.add(l, (0..60).map(|i| (i * 15_000, (i * 3 % 17) as f64)));
        let l = Labels::from_pairs([("__name__", "temp"), ("instance", inst), ("job", job)]);
        s.add(l, (0..60).map(|i| (i * 15_000, 20.0 + (i % 5) as f64 * 0.5)));
    }
    let l = Labels::from_pairs([("__name__", "lat_bucket"), ("le", "0.5")]);
    s.add(l, (0..60).map(|i| (i * 15_000, i as f64)));
    let l = Labels::from_pairs([("__name__", "lat_bucket"), ("le", "+Inf")]);
    s.add(l, (0..60).map(|i| (i * 15_000, 2.0 * i as f64)));
    s
}

fuzz_target!(|data: &[u8]| {
    let q = String::from_utf8_lossy(data).into_owned();
    // The parser boundary contains promql-parser's panics; evaluation must not panic.
    let Ok(expr) = muninn_fuzz::contained(|| promql::parse::parse(&q)) else {
        return;
    };
    let h = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            let store = store();
            let tenant = TenantId::new("fuzz").expect("tenant");
            let opts = || EngineOptions {
                max_samples: 1_000_000,
                max_bytes: 64 << 20,
                timeout: Some(std::time::Duration::from_secs(2)),
                ..Default::default()
            };
            rt.block_on(async {
                let _ = promql::instant_query(&store, &tenant, opts(), &expr, 600_000).await;
                let _ =
                    promql::range_query(&store, &tenant, opts(), &expr, 0, 900_000, 30_000).await;
            });
        })
        .expect("thread");
    h.join().expect("evaluation panicked");
});
