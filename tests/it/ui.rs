//! The built-in UI in a real headless browser (Debian `chromium`): the page loads its own
//! assets (no CDN), shows the cluster and the tenant's usage, and a query given in the URL
//! draws a graph; a screenshot is saved as a test artifact.

use std::process::Command;

use crate::harness::{Muninn, agent, now_ms, series, wait_for, write_request};

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
    assert_eq!(
        status["usage_scope"], "cluster",
        "the querier's view of the ring"
    );
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

#[test]
fn label_values_are_shown_as_text_not_markup() {
    let m = Muninn::all(&[]);
    let now = now_ms();
    let hostile = "<img src=x onerror=document.body.dataset.pwned=1>";
    let (s, _) = m.push(
        "xss",
        &write_request(vec![series(
            &[("__name__", "ui_xss"), ("job", hostile)],
            &[(now - 60_000, 1.0), (now, 2.0)],
        )]),
    );
    assert_eq!(s, 200);
    let url = format!("{}/?tenant=xss&expr=ui_xss&range=5m", m.http);
    let dom = String::from_utf8_lossy(&chromium(&url, &["--dump-dom"]).stdout).to_string();
    assert!(dom.contains("data-graph=\"drawn\""), "{dom}");
    assert!(!dom.contains("data-pwned"), "the label's markup ran: {dom}");
    assert!(dom.contains("&lt;img src=x"), "shown escaped: {dom}");
}

#[test]
fn with_a_tenants_file_the_status_shows_only_the_callers_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.yaml");
    std::fs::write(
        &tenants,
        format!(
            "tenants:\n  team-a: {{password_sha256: {}}}\n  team-b: {{password_sha256: {}}}\n",
            crate::tenancy::sha256("pass-a"),
            crate::tenancy::sha256("pass-b")
        ),
    )
    .unwrap();
    let m = Muninn::all(&[&format!("--auth.tenants-file={}", tenants.display())]);
    use crate::tenancy::basic;
    let now = now_ms();
    for (t, p) in [("team-a", "pass-a"), ("team-b", "pass-b")] {
        let (s, _) = m.push_raw(
            None,
            &[("Authorization", &basic(t, p))],
            crate::harness::encode(&write_request(vec![series(
                &[("__name__", "ui_auth"), ("job", t)],
                &[(now, 1.0)],
            )])),
        );
        assert_eq!(s, 200);
    }
    let status = |auth: Option<String>| -> serde_json::Value {
        let mut req = agent().get(&format!("{}/ui/status", m.http));
        if let Some(a) = auth {
            req = req.header("Authorization", &a);
        }
        serde_json::from_str(&req.call().unwrap().body_mut().read_to_string().unwrap()).unwrap()
    };
    assert_eq!(
        status(None)["tenants"].as_array().unwrap().len(),
        0,
        "no tenant ids in public"
    );
    let a = status(Some(basic("team-a", "pass-a")));
    let listed: Vec<&str> = a["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["team-a"]);
    assert_eq!(
        status(Some(basic("team-a", "wrong")))["tenants"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn in_a_cluster_the_querier_shows_every_ingesters_tenants_with_replicas_counted_once() {
    use crate::cluster::{Cluster, numbered, stream_start, wait_active};
    // 4 ingesters at RF 3: each holds a different three quarters of the series, so no single
    // ingester's numbers are the cluster's.
    let c = Cluster::new();
    let ing: Vec<Muninn> = (1..=4)
        .map(|i| c.ingester(&format!("ing-{i}"), &[]))
        .collect();
    let q = c.start("querier", "q", &[]);
    let ids = ["ing-1", "ing-2", "ing-3", "ing-4"];
    for m in ing.iter().chain([&q]) {
        wait_active(m, &ids);
    }
    let t0 = stream_start();
    for (tenant, n) in [("ui-a", 40), ("ui-b", 7)] {
        let (s, body) = ing[0].push(tenant, &numbered(t0, 0, n));
        assert_eq!(s, 200, "{body}");
    }
    let usage_of = |status: &serde_json::Value| -> Vec<(String, u64)> {
        status["tenants"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        (
                            t["tenant"].as_str().unwrap_or_default().to_string(),
                            t["series"].as_u64().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // A push is acknowledged at quorum (2 of 3 copies): the third may land just after.
    let want = vec![("ui-a".to_string(), 40), ("ui-b".to_string(), 7)];
    let status = wait_for(
        "the querier's usage table to count every tenant's series once",
        std::time::Duration::from_secs(10),
        || {
            let (s, status) = q.get(None, "/ui/status", &[]);
            assert_eq!(s, 200);
            (usage_of(&status) == want).then_some(status)
        },
    );
    assert_eq!(status["role"], "querier");
    assert_eq!(status["usage_scope"], "cluster", "{status}");
    assert_eq!(status["usage_errors"], serde_json::json!([]), "{status}");
    // One ingester alone holds only its replicas: its own page says so and shows them.
    let (_, own) = ing[0].get(None, "/ui/status", &[]);
    assert_eq!(own["usage_scope"], "ingester", "{own}");
    let own_a = own["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "ui-a")
        .map(|t| t["series"].as_u64().unwrap())
        .unwrap_or(0);
    assert!(
        own_a < 40,
        "ing-1 holds a share of ui-a, not all of it: {own}"
    );

    // An ingester that dies before the ring marks it unhealthy is named, and the rest answer.
    let mut ing = ing;
    ing[3].kill9();
    let (_, status) = q.get(None, "/ui/status", &[]);
    let errors = status["usage_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{status}");
    assert!(
        status["tenants"][0]["series"].as_u64().unwrap() < 40,
        "{status}"
    );
}
