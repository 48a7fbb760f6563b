//! Hostile queries against a real `muninn all`: each is answered (400 `bad_data` for bad
//! parameters and nesting, 422 `execution` or a correct answer for expensive queries) within
//! 20 s, the process stays alive with a peak RSS (VmHWM) under 2 GB, and ingestion still
//! works afterwards.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Muninn, now_ms, series, write_request};

/// The whole process may never hold more than this.
const MAX_RSS_KB: u64 = 2_000_000;
/// Every hostile query is answered within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// The pid of `m`, found by its `--http-addr` in `/proc/*/cmdline` (the harness keeps the
/// child private).
fn pid_of(m: &Muninn) -> u32 {
    let addr = format!("--http-addr={}", m.http.trim_start_matches("http://"));
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmd.split(|b| *b == 0).any(|a| a == addr.as_bytes()) {
            return pid;
        }
    }
    panic!("no process with {addr}");
}

/// A field of `/proc/<pid>/status` in kB; `None` once the process is gone.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    if s.lines()
        .any(|l| l.starts_with("State:") && (l.contains("zombie") || l.contains("dead")))
    {
        return None;
    }
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A form POST; an error when the connection drops instead of answering (or after 120 s).
fn post_form(m: &Muninn, path: &str, form: &[(&str, &str)]) -> Result<(u16, Value), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let mut resp = agent
        .post(&format!("{}{path}", m.http))
        .header("X-Scope-OrgID", "hostile")
        .send_form(form.iter().copied())
        .map_err(|e| format!("no answer: {e}"))?;
    let code = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Ok((
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A hostile request: its name, path, form and the answer wanted.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Want);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// 400 `bad_data`.
    BadData,
    /// 422 `execution`, or 200 with a result.
    ExecutionOrAnswer,
}

/// Sends one hostile query and checks its answer, its time and the process after it;
/// returns the VmHWM after it, in kB.
fn check(m: &Muninn, pid: u32, name: &str, path: &str, form: &[(&str, &str)], want: Want) -> u64 {
    let t = Instant::now();
    let r = post_form(m, path, form);
    let took = t.elapsed();
    let (code, v) = r.unwrap_or_else(|e| panic!("{name}: {e}; log: {}", m.log_text()));
    assert!(took < ANSWER_WITHIN, "{name}: answered after {took:?}");
    match want {
        Want::BadData => {
            assert_eq!(code, 400, "{name}: {v}");
            assert_eq!(v["errorType"], "bad_data", "{name}: {v}");
        }
        Want::ExecutionOrAnswer => match code {
            422 => assert_eq!(v["errorType"], "execution", "{name}: {v}"),
            200 => assert_eq!(v["status"], "success", "{name}: {v}"),
            _ => panic!("{name}: {code} {v}"),
        },
    }
    let hwm = status_kb(pid, "VmHWM:")
        .unwrap_or_else(|| panic!("{name}: the process is gone; log: {}", m.log_text()));
    eprintln!(
        "{name}: {code} in {took:?}, VmHWM {} MB: {}",
        hwm / 1000,
        v["error"].as_str().unwrap_or("")
    );
    assert!(hwm < MAX_RSS_KB, "{name}: VmHWM {hwm} kB");
    hwm
}

fn push_ok(m: &Muninn) {
    let now = now_ms();
    let req = write_request(vec![series(
        &[("__name__", "after_hostile"), ("job", "x")],
        &[(now, 1.0)],
    )]);
    let (code, body) = m.push("hostile", &req);
    assert_eq!(code, 200, "push after hostile queries: {body}");
}

#[test]
fn hostile_queries_are_answered_and_the_process_survives() {
    let mut m = Muninn::all(&[]);
    let pid = pid_of(&m);
    push_ok(&m);
    let now = format!("{}", now_ms() / 1000);
    let parens = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let chain = format!("1{}", "+1".repeat(100_000));
    let unary = format!("{}1", "-".repeat(100_000));
    let q = "/api/v1/query";
    let qr = "/api/v1/query_range";
    let range = |start: &'static str, end: &'static str, step: &'static str| {
        vec![
            ("query", "vector(1)"),
            ("start", start),
            ("end", end),
            ("step", step),
        ]
    };
    use Want::*;
    let cases: Vec<Case> = vec![
        (
            "vector(1)[365d:1ms]",
            q,
            vec![("query", "vector(1)[365d:1ms]"), ("time", &now)],
            ExecutionOrAnswer,
        ),
        (
            "max_over_time(vector(1)[365d:1ms])",
            q,
            vec![
                ("query", "max_over_time(vector(1)[365d:1ms])"),
                ("time", &now),
            ],
            ExecutionOrAnswer,
        ),
        (
            "sum_over_time(vector(1)[1000d:1s])",
            q,
            vec![
                ("query", "sum_over_time(vector(1)[1000d:1s])"),
                ("time", &now),
            ],
            ExecutionOrAnswer,
        ),
        (
            "range query over a 1d:1ms subquery",
            qr,
            vec![
                ("query", "max_over_time(vector(1)[1d:1ms])"),
                ("start", "0"),
                ("end", "3600"),
                ("step", "60"),
            ],
            ExecutionOrAnswer,
        ),
        (
            "100,000 nested parentheses",
            q,
            vec![("query", &parens), ("time", &now)],
            BadData,
        ),
        (
            "100,000-operator binary chain",
            q,
            vec![("query", &chain), ("time", &now)],
            BadData,
        ),
        (
            "100,000 unary minuses",
            q,
            vec![("query", &unary), ("time", &now)],
            BadData,
        ),
        ("start=NaN", qr, range("NaN", "100", "1"), BadData),
        ("end=+Inf", qr, range("0", "+Inf", "1"), BadData),
        ("start=-Inf", qr, range("-Inf", "100", "1"), BadData),
        (
            "start=-9e15&end=9e15 (span overflows i64 ms)",
            qr,
            range("-9e15", "9e15", "1"),
            BadData,
        ),
        ("end=1e300", qr, range("0", "1e300", "1"), BadData),
        ("step=NaN", qr, range("0", "100", "NaN"), BadData),
        ("step=1e300", qr, range("0", "100", "1e300"), BadData),
        ("step=0", qr, range("0", "100", "0"), BadData),
        ("step=-1", qr, range("0", "100", "-1"), BadData),
        ("11,001 points", qr, range("0", "11001", "1"), BadData),
        (
            "time=NaN",
            q,
            vec![("query", "vector(1)"), ("time", "NaN")],
            BadData,
        ),
        (
            "timeout=Inf",
            q,
            vec![("query", "vector(1)"), ("timeout", "Inf")],
            BadData,
        ),
    ];
    let mut peak = 0;
    for (name, path, form, want) in &cases {
        peak = peak.max(check(&m, pid, name, path, form, *want));
    }
    // Prometheus's exact message for too many points.
    let (_, v) = post_form(&m, qr, &range("0", "11001", "1")).unwrap();
    assert_eq!(
        v["error"],
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
    );
    // Just inside the limits: deep but allowed nesting is evaluated, not refused or crashed.
    let deep = format!("{}vector(1){}", "abs(".repeat(250), ")".repeat(250));
    for path in [q, "/api/v1/format_query", "/api/v1/parse_query"] {
        let (code, v) = post_form(&m, path, &[("query", &deep), ("time", &now)]).unwrap();
        assert_eq!(code, 200, "{path}: {v}");
    }
    let chain = format!("1{}", "+1".repeat(250));
    let (code, v) = post_form(&m, q, &[("query", &chain), ("time", &now)]).unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][1], "251");
    let (code, v) = post_form(&m, qr, &range("0", "11000", "1")).unwrap();
    assert_eq!(code, 200, "{v}");
    assert!(m.healthy(), "not healthy after hostile queries");
    push_ok(&m);
    eprintln!("peak VmHWM over all hostile queries: {} MB", peak / 1000);
}

/// `n` series `big{i="<index><padding>"}`, each `len` bytes of `i`, one sample 10 s ago.
fn push_big(m: &Muninn, n: usize, len: usize, now: i64) {
    for batch in (0..n).collect::<Vec<_>>().chunks(2000) {
        let ts: Vec<_> = batch
            .iter()
            .map(|i| {
                let mut v = format!("{i:05}");
                v.extend(std::iter::repeat_n('p', len.saturating_sub(v.len())));
                series(&[("__name__", "big"), ("i", &v)], &[(now - 10_000, 1.0)])
            })
            .collect();
        let (code, body) = m.push("hostile", &write_request(ts));
        assert_eq!(code, 200, "{body}");
    }
}

/// `count(label_replace(big, "x", "'$1'..." , "i", "(.*)"))`, the label inflation of
/// issue 8: every series gets a new label of `refs` copies of its `i`.
fn inflating_query(refs: usize) -> String {
    let repl = "'$1'".repeat(refs);
    format!(r#"count(label_replace(big, "x", "{repl}", "i", "(.*)"))"#)
}

#[test]
fn label_inflating_query_is_bounded() {
    let m = Muninn::all(&[]);
    let pid = pid_of(&m);
    let now = now_ms();
    // Issue 8 used 100,000 series and 5000 copies of a 5-byte `i` (3.5 GB of labels);
    // fewer series with longer values inflate as much (10,000 × 300 × 1002 B = 3 GB without
    // a memory budget) and stay fast in a debug build, which expands `$1` slowly.
    const SERIES: usize = 10_000;
    let t = Instant::now();
    push_big(&m, SERIES, 1000, now);
    eprintln!("pushed {SERIES} series in {:?}", t.elapsed());
    let before = status_kb(pid, "VmHWM:").unwrap();
    // The query runs on its own thread while this one keeps pushing: ingestion keeps its
    // share (evaluation does not run on the runtime's workers).
    let (code, v, took, slowest_push) = std::thread::scope(|s| {
        let query = s.spawn(|| {
            let t = Instant::now();
            let r = post_form(
                &m,
                "/api/v1/query",
                &[
                    ("query", &inflating_query(300)),
                    ("time", &format!("{}", now / 1000)),
                ],
            );
            (r, t.elapsed())
        });
        let mut slowest = Duration::ZERO;
        while !query.is_finished() {
            let t = Instant::now();
            push_ok(&m);
            slowest = slowest.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        let (r, took) = query.join().unwrap();
        let (code, v) = r.unwrap_or_else(|e| panic!("{e}; log: {}", m.log_text()));
        (code, v, took, slowest)
    });
    eprintln!("slowest push while the query ran: {slowest_push:?}");
    assert!(
        slowest_push < Duration::from_secs(2),
        "a push took {slowest_push:?} while the query ran"
    );
    let hwm = status_kb(pid, "VmHWM:")
        .unwrap_or_else(|| panic!("the process is gone; log: {}", m.log_text()));
    eprintln!(
        "label_replace: {code} in {took:?}, VmHWM {} MB before, {} MB after: {}",
        before / 1000,
        hwm / 1000,
        v["error"]
    );
    match code {
        422 => {
            assert_eq!(v["errorType"], "execution", "{v}");
            let e = v["error"].as_str().unwrap_or("");
            assert!(e.contains("--querier.max-memory-per-query"), "{e}");
        }
        200 => assert_eq!(v["data"]["result"][0]["value"][1], SERIES.to_string()),
        _ => panic!("{code} {v}"),
    }
    assert!(hwm < MAX_RSS_KB, "VmHWM {hwm} kB");
    assert!(took < ANSWER_WITHIN, "answered after {took:?}");
    push_ok(&m);
    // Within the budget, the same query is answered correctly.
    let (code, v) = post_form(
        &m,
        "/api/v1/query",
        &[
            ("query", &inflating_query(3)),
            ("time", &format!("{}", now / 1000)),
        ],
    )
    .unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], SERIES.to_string());
}

#[test]
fn memory_budget_flag_names_its_limit() {
    let m = Muninn::all(&["--querier.max-memory-per-query=64MiB"]);
    let now = now_ms();
    push_big(&m, 1000, 100, now);
    // 1000 × 2000 × 100 B = 200 MB of labels.
    let (code, v) = post_form(
        &m,
        "/api/v1/query",
        &[
            ("query", &inflating_query(2000)),
            ("time", &format!("{}", now / 1000)),
        ],
    )
    .unwrap();
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errorType"], "execution", "{v}");
    assert_eq!(
        v["error"],
        "query processing would hold more than 64MiB in memory (limit set by --querier.max-memory-per-query)"
    );
    // Selecting the series alone fits.
    let (code, v) = post_form(
        &m,
        "/api/v1/query",
        &[
            ("query", "count(big)"),
            ("time", &format!("{}", now / 1000)),
        ],
    )
    .unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "1000");
}
