//! Durability: every acknowledged sample survives SIGKILL at an arbitrary moment, and a torn
//! WAL tail is repaired at startup instead of crashing it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::harness::{Muninn, result, series, write_request};

const SERIES: usize = 4;

fn samples_of(m: &Muninn, t_end: i64) -> Vec<Vec<(i64, f64)>> {
    let t = format!("{}", t_end as f64 / 1000.0);
    let (code, v) = m.get(
        Some("crash"),
        "/api/v1/query",
        &[("query", "crash_test_total[1d]"), ("time", &t)],
    );
    assert_eq!(code, 200, "{v}");
    let mut out = vec![vec![]; SERIES];
    for s in result(&v) {
        let i: usize = s["metric"]["series"].as_str().unwrap().parse().unwrap();
        out[i] = crate::harness::points(s);
    }
    out
}

#[test]
fn acknowledged_samples_survive_sigkill() {
    let mut m = Muninn::all(&[]);
    let base = crate::harness::now_ms() - 3_600_000;
    let acked = Arc::new(AtomicI64::new(-1));
    let stop = Arc::new(AtomicBool::new(false));
    let url = m.http.clone();
    let pusher = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let target = Muninn::client_for(&url);
        std::thread::spawn(move || {
            for i in 0i64.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let req = write_request(
                    (0..SERIES)
                        .map(|s| {
                            let sv = s.to_string();
                            series(
                                &[("__name__", "crash_test_total"), ("series", &sv)],
                                &[(base + i * 100, i as f64)],
                            )
                        })
                        .collect(),
                );
                match target(&req) {
                    Some(200) => acked.store(i, Ordering::SeqCst),
                    _ => return,
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    m.kill9();
    stop.store(true, Ordering::SeqCst);
    pusher.join().unwrap();
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked > 50, "the pusher got going before the kill: {acked}");

    m.restart();
    let got = samples_of(&m, base + (acked + 10_000) * 100);
    for (s, samples) in got.iter().enumerate() {
        assert!(
            samples.len() as i64 > acked,
            "series {s}: {} samples, {} acknowledged",
            samples.len(),
            acked + 1
        );
        for (i, &(t, v)) in samples.iter().enumerate() {
            assert_eq!(
                (t, v),
                (base + i as i64 * 100, i as f64),
                "series {s} sample {i}"
            );
        }
    }
    assert!(
        m.log_text().contains("replayed tenant wal"),
        "replay is logged"
    );
}

#[test]
fn torn_wal_tail_is_truncated_not_fatal() {
    let mut m = Muninn::all(&[]);
    let base = crate::harness::now_ms() - 60_000;
    for i in 0..20 {
        let req = write_request(vec![series(
            &[("__name__", "crash_test_total"), ("series", "0")],
            &[(base + i * 100, i as f64)],
        )]);
        assert_eq!(m.push("crash", &req).0, 200);
    }
    m.kill9();
    // A torn write: half a frame header and garbage at the end of the newest segment.
    let wal = m.data_dir.join("wal").join("crash");
    let mut segs: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let mut data = std::fs::read(last).unwrap();
    let len = data.len();
    data.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    std::fs::write(last, &data).unwrap();

    m.restart();
    assert!(m.healthy());
    assert!(
        m.log_text().contains("truncating it there"),
        "a warning names the repair"
    );
    assert_eq!(
        std::fs::metadata(last).unwrap().len() as usize,
        len,
        "garbage cut off"
    );
    let got = samples_of(&m, base + 10_000);
    assert_eq!(got[0].len(), 20);
    // And the repaired WAL keeps taking writes that survive another crash.
    let req = write_request(vec![series(
        &[("__name__", "crash_test_total"), ("series", "0")],
        &[(base + 5_000, 99.0)],
    )]);
    assert_eq!(m.push("crash", &req).0, 200);
    m.restart();
    let got = samples_of(&m, base + 10_000);
    assert_eq!(got[0].len(), 21);
    assert_eq!(got[0][20], (base + 5_000, 99.0));
}

impl Muninn {
    /// A push function usable from another thread; `None` when the connection fails.
    pub fn client_for(
        http: &str,
    ) -> impl Fn(&muninn_proto::prometheus::WriteRequest) -> Option<u16> + Send + 'static {
        let url = format!("{http}/api/v1/push");
        let agent = crate::harness::agent();
        move |req| {
            agent
                .post(&url)
                .header("Content-Encoding", "snappy")
                .header("X-Scope-OrgID", "crash")
                .send(&crate::harness::encode(req)[..])
                .ok()
                .map(|r| r.status().as_u16())
        }
    }
}
