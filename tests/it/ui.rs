//! The built-in UI in a real headless browser (Debian `chromium`): the page loads its own
//! assets (no CDN), shows the cluster and the tenant's usage, and a query given in the URL
//! draws a graph; a screenshot is saved as a test artifact.

use std::process::Command;

use crate::harness::{Muninn, agent, now_ms, series, write_request};

/// Runs headless Chromium on `url` until the page's scripts settle; `args` add the output
/// (`--dump-dom` or `--screenshot=...`).
fn chromium(url: &str, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,1000",
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("the `chromium` binary (Debian package; scripts/test installs it) must be on PATH")
}

#[test]
fn the_ui_loads_shows_the_cluster_and_draws_a_query_graph_in_headless_chromium() {
    let m = Muninn::all(&[]);
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..120)
        .map(|i| (now - (119 - i) * 15_000, (i % 17) as f64))
        .collect();
    for (job, offset) in [("api", 0.0), ("db", 5.0)] {
        let shifted: Vec<(i64, f64)> = samples.iter().map(|(t, v)| (*t, v + offset)).collect();
        let (s, _) = m.push(
            "ui-tenant",
            &write_request(vec![series(
                &[("__name__", "ui_demo"), ("job", job)],
                &shifted,
            )]),
        );
        assert_eq!(s, 200);
    }
    // Every asset is served by Muninn itself.
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "javascript"),
        ("/ui/uplot.min.js", "javascript"),
        ("/ui/uplot.min.css", "text/css"),
        ("/ui/style.css", "text/css"),
    ] {
        let r = agent().get(&format!("{}{path}", m.http)).call().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let ct = r
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.contains(kind), "{path}: {ct}");
    }
    let html = agent()
        .get(&format!("{}/", m.http))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        !html.contains("://cdn") && !html.contains("https://"),
        "no external resources"
    );
    let (s, status) = m.get(None, "/ui/status", &[]);
    assert_eq!(s, 200);
    assert_eq!(status["role"], "all");
    assert_eq!(status["tenants"][0]["tenant"], "ui-tenant");
    assert_eq!(status["tenants"][0]["series"], 2);
    assert_eq!(
        status["members"][0]["role"], "all",
        "the process itself without gossip"
    );

    let url = format!("{}/?tenant=ui-tenant&expr=ui_demo&range=1h", m.http);
    let out = chromium(&url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-graph=\"drawn\""),
        "no graph drawn; DOM:\n{dom}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("data-series=\"2\""),
        "two series graphed: {dom}"
    );
    assert!(dom.contains("<canvas"), "uPlot draws on a canvas");
    assert!(dom.contains("ui-tenant"), "the tenant's usage is shown");
    assert!(dom.contains("ACTIVE"), "the ring is shown");

    // A query that fails shows its error.
    let bad = format!("{}/?tenant=ui-tenant&expr=sum(&range=1h", m.http);
    let dom = String::from_utf8_lossy(&chromium(&bad, &["--dump-dom"]).stdout).to_string();
    assert!(dom.contains("data-graph=\"error\""), "{dom}");

    // The screenshot, kept as the test's artifact.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(&url, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {}: {e}; {}",
            shot.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 10_000,
        "a page with a graph, not a blank one: {} bytes",
        png.len()
    );
    eprintln!("UI screenshot: {}", shot.display());
}
