//! Tenant isolation: data written as one tenant is invisible to another on every endpoint,
//! and requests without a valid tenant are refused before they touch anything.

use serde_json::Value;

use crate::harness::{Muninn, now_ms, result, series, write_request};

fn endpoints(t: &str) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let start = format!("{}", t.parse::<f64>().unwrap() - 3600.0);
    vec![
        (
            "/api/v1/query",
            vec![("query", "secret_metric".into()), ("time", t.into())],
        ),
        (
            "/prometheus/api/v1/query",
            vec![("query", "{team=\"a\"}".into()), ("time", t.into())],
        ),
        (
            "/api/v1/query",
            vec![("query", "secret_metric[10m]".into()), ("time", t.into())],
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "secret_metric".into()),
                ("start", start),
                ("end", t.into()),
                ("step", "60".into()),
            ],
        ),
        ("/api/v1/series", vec![("match[]", "secret_metric".into())]),
        ("/api/v1/labels", vec![]),
        ("/api/v1/label/team/values", vec![]),
        ("/api/v1/label/__name__/values", vec![]),
        ("/api/v1/metadata", vec![]),
    ]
}

fn is_empty(v: &Value) -> bool {
    match &v["data"] {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) if o.contains_key("result") => result(v).is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[test]
fn tenants_are_isolated_on_every_endpoint() {
    let m = Muninn::all(&[]);
    let now = now_ms();
    let mut req = write_request(vec![series(
        &[("__name__", "secret_metric"), ("team", "a")],
        &[(now - 1000, 42.0)],
    )]);
    req.metadata.push(muninn_proto::prometheus::MetricMetadata {
        r#type: 2,
        metric_family_name: "secret_metric".into(),
        help: "only for tenant a".into(),
        unit: String::new(),
    });
    assert_eq!(m.push("tenant-a", &req).0, 200);
    let t = format!("{}", now as f64 / 1000.0);

    for (path, params) in endpoints(&t) {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, a) = m.get(Some("tenant-a"), path, &params);
        assert_eq!(code, 200, "{path} as a: {a}");
        assert!(!is_empty(&a), "{path}: tenant a sees its data: {a}");
        let (code, b) = m.get(Some("tenant-b"), path, &params);
        assert_eq!(code, 200, "{path} as b: {b}");
        assert!(is_empty(&b), "{path}: tenant b must see nothing, got {b}");
        let (code, _) = m.get(None, path, &params);
        assert_eq!(code, 401, "{path} without a tenant");
    }
}

#[test]
fn missing_or_invalid_tenants_are_refused() {
    let m = Muninn::all(&[]);
    let req = write_request(vec![series(&[("__name__", "x")], &[(now_ms(), 1.0)])]);
    let body = crate::harness::encode(&req);
    let (code, msg) = m.push_raw(None, &[], body.clone());
    assert_eq!(code, 401);
    assert!(msg.contains("X-Scope-OrgID"), "{msg}");
    for bad in ["..", ".", "a/b", "../../etc", &"x".repeat(151)] {
        let (code, msg) = m.push_raw(Some(bad), &[], body.clone());
        assert_eq!(code, 401, "tenant {bad:?}: {msg}");
    }
    // Nothing was created for them.
    let wal = m.data_dir.join("wal");
    let dirs: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");
    assert!(!m.data_dir.parent().unwrap().join("etc").exists());
}

#[test]
fn multitenancy_disabled_uses_anonymous() {
    let m = Muninn::all(&["--auth.multitenancy-enabled=false"]);
    let now = now_ms();
    let req = write_request(vec![series(&[("__name__", "single")], &[(now, 7.0)])]);
    assert_eq!(m.push_raw(None, &[], crate::harness::encode(&req)).0, 200);
    let (code, v) = m.get(
        None,
        "/api/v1/query",
        &[
            ("query", "single"),
            ("time", &format!("{}", now as f64 / 1000.0)),
        ],
    );
    assert_eq!(code, 200);
    assert_eq!(result(&v)[0]["value"][1], "7");
    assert!(m.data_dir.join("wal").join("anonymous").is_dir());
}
