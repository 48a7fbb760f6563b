//! A runner for Prometheus's PromQL test language (`../shared/promql-tests/DSL.md`):
//! `load`, `clear`, `eval instant|range` with expected series, `expect fail|warn|info|
//! no_warn|no_info|ordered|string|range vector`, and the expanding series notation.
//!
//! Native histograms (`{{...}}`, `load_with_nhcb`) are loaded and compared as Prometheus's
//! runner does. Every case runs: none is skipped.

use muninn_proto::tenant::TenantId;
use muninn_storage::histogram::FloatHistogram;
use muninn_storage::labels::{Label, Labels, METRIC_NAME};
use promql_parser::parser::Expr;

use crate::api::params::parse_duration;
use crate::mem_store::{MemPoint, MemStore};
use crate::promql::value::Hist;
use crate::promql::{self, EngineOptions, Point, QueryResult, QueryValue};

mod nhcb;
mod notation;

pub use notation::{Points, Val, expand_points, parse_histogram, parse_number, split_series};

/// Outcome of one file.
#[derive(Debug, Default)]
pub struct FileReport {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// `line: query: what went wrong`, for failed cases.
    pub failures: Vec<String>,
}

struct Expectations {
    fail: Option<Option<Msg>>,
    warn: Vec<Option<Msg>>,
    info: Vec<Option<Msg>>,
    no_warn: bool,
    no_info: bool,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
    series: Vec<(Option<Labels>, Points)>,
}

enum Msg {
    Exact(String),
    Regex(regex::Regex),
}

impl Msg {
    fn matches(&self, s: &str) -> bool {
        match self {
            Msg::Exact(m) => m == s,
            Msg::Regex(r) => r.is_match(s),
        }
    }
}

fn almost_equal(a: f64, b: f64) -> bool {
    const EPS: f64 = 1e-6;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPS * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPS
}

fn parse_labels(desc: &str) -> Result<Labels, String> {
    if desc.trim() == "{}" {
        return Ok(Labels::default());
    }
    let expr =
        crate::promql::parse::parse(desc).map_err(|e| format!("bad series {desc:?}: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("bad series {desc:?}"));
    };
    let mut pairs: Vec<(String, String)> = vec![];
    if let Some(n) = vs.name {
        pairs.push((METRIC_NAME.into(), n));
    }
    for m in vs.matchers.matchers {
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

fn parse_time(s: &str) -> Result<i64, String> {
    parse_duration(s).ok_or_else(|| format!("bad time {s:?}"))
}

fn is_command(line: &str) -> bool {
    let l = line.trim_start();
    line.starts_with(|c: char| !c.is_whitespace())
        && (l.starts_with("load") || l.starts_with("clear") || l.starts_with("eval"))
}

fn parse_msg(rest: &str) -> Result<Option<Msg>, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(None);
    }
    let (kind, m) = rest
        .split_once(':')
        .ok_or_else(|| format!("bad expect {rest:?}"))?;
    let m = m.trim();
    let unq = |s: &str| -> String {
        let s = s.trim();
        if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
            s[1..s.len() - 1].to_owned()
        } else {
            s.to_owned()
        }
    };
    match kind.trim() {
        "msg" => Ok(Some(Msg::Exact(unq(m)))),
        "regex" => Ok(Some(Msg::Regex(
            regex::Regex::new(&unq(m)).map_err(|e| e.to_string())?,
        ))),
        other => Err(format!("bad expect kind {other:?}")),
    }
}

fn parse_expectations(lines: &[&str]) -> Result<Expectations, String> {
    let mut e = Expectations {
        fail: None,
        warn: vec![],
        info: vec![],
        no_warn: false,
        no_info: false,
        ordered: false,
        string: None,
        range_vector: None,
        series: vec![],
    };
    for raw in lines {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix("expect ") {
            let rest = rest.trim();
            let (kind, tail) = rest
                .split_once(|c: char| c.is_whitespace() || c == ':')
                .map_or((rest, ""), |(a, b)| (a, b));
            let tail = if rest.as_bytes().get(kind.len()) == Some(&b':') {
                format!("msg:{tail}")
            } else {
                tail.to_owned()
            };
            match kind {
                "fail" => e.fail = Some(parse_msg(&tail)?),
                "warn" => e.warn.push(parse_msg(&tail)?),
                "info" => e.info.push(parse_msg(&tail)?),
                "no_warn" => e.no_warn = true,
                "no_info" => e.no_info = true,
                "ordered" => e.ordered = true,
                "string" => {
                    let t = tail.trim();
                    e.string = Some(t.trim_matches(|c| c == '"' || c == '`').to_owned());
                }
                "range" => {
                    // range vector from A to B step C
                    let w: Vec<&str> = tail.split_whitespace().collect();
                    if w.len() == 7
                        && w[0] == "vector"
                        && w[1] == "from"
                        && w[3] == "to"
                        && w[5] == "step"
                    {
                        e.range_vector =
                            Some((parse_time(w[2])?, parse_time(w[4])?, parse_time(w[6])?));
                    } else {
                        return Err(format!("bad expect range vector {l:?}"));
                    }
                }
                other => return Err(format!("unknown expectation {other:?}")),
            }
            continue;
        }
        // A bare value is a scalar expectation.
        if let Some(v) = parse_number(l) {
            e.series.push((None, vec![Some(Val::F(v))]));
            continue;
        }
        let (desc, pts) = split_series(l);
        e.series
            .push((Some(parse_labels(desc)?), expand_points(pts)?));
    }
    Ok(e)
}

/// Runs one test file's text.
pub async fn run_file(text: &str) -> FileReport {
    let mut report = FileReport::default();
    let mut store = MemStore::default();
    let tenant = TenantId::anonymous();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        i += 1;
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let start_line = i;
        // The block: following lines up to a blank line or the next command.
        let mut block = vec![];
        while i < lines.len() && !lines[i].trim().is_empty() && !is_command(lines[i]) {
            block.push(lines[i]);
            i += 1;
        }
        if t == "clear" {
            store.clear();
        } else if let Some(rest) = t.strip_prefix("load") {
            let nhcb = rest.starts_with("_with_nhcb");
            let rest = rest.trim_start_matches("_with_nhcb").trim();
            let interval = match rest.split_whitespace().next().map(parse_time) {
                Some(Ok(iv)) => iv,
                _ => {
                    report.failed += 1;
                    report
                        .failures
                        .push(format!("{start_line}: bad load {t:?}"));
                    continue;
                }
            };
            let mut classic: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
            for l in block {
                let l = l.trim();
                if l.starts_with('#') {
                    continue;
                }
                let (desc, pts) = split_series(l);
                let Ok(labels) = parse_labels(desc) else {
                    report
                        .failures
                        .push(format!("{start_line}: bad series {desc:?}"));
                    continue;
                };
                match expand_points(pts) {
                    Ok(points) => {
                        let points: Vec<(i64, MemPoint)> = points
                            .into_iter()
                            .enumerate()
                            .filter_map(|(k, v)| {
                                let t = k as i64 * interval;
                                v.map(|v| match v {
                                    Val::F(f) => (t, MemPoint::F(f)),
                                    Val::H(h, _) => (t, MemPoint::H(Hist::new(*h))),
                                })
                            })
                            .collect();
                        if nhcb {
                            classic.push((
                                labels.clone(),
                                points
                                    .iter()
                                    .filter_map(|(t, p)| match p {
                                        MemPoint::F(f) => Some((*t, *f)),
                                        MemPoint::H(_) => None,
                                    })
                                    .collect(),
                            ));
                        }
                        store.add_points(labels, points);
                    }
                    Err(e) => report.failures.push(format!("{start_line}: {e}")),
                }
            }
            if nhcb {
                match nhcb::convert(&classic) {
                    Ok(series) => {
                        for (l, hs) in series {
                            store.add_points(
                                l,
                                hs.into_iter().map(|(t, h)| (t, MemPoint::H(Hist::new(h)))),
                            );
                        }
                    }
                    Err(e) => {
                        report.failed += 1;
                        report
                            .failures
                            .push(format!("{start_line}: load_with_nhcb: {e}"));
                    }
                }
            }
        } else if t.starts_with("eval") {
            match run_eval(&store, &tenant, t, &block).await {
                Ok(Outcome::Pass) => report.passed += 1,
                Ok(Outcome::Fail(why)) | Err(why) => {
                    report.failed += 1;
                    report.failures.push(format!("{start_line}: {t}: {why}"));
                }
            }
        } else {
            report.failed += 1;
            report
                .failures
                .push(format!("{start_line}: unknown command {t:?}"));
        }
    }
    report
}

enum Outcome {
    Pass,
    Fail(String),
}

/// Whether a result point is the expected one: floats almost equal, histograms compared as
/// Prometheus's runner does (empty buckets dropped, counts almost equal, the hint only if
/// the expectation states it).
fn point_matches(want: &Val, got: &Point) -> bool {
    match (want, got) {
        (Val::F(w), Point::F(g)) => almost_equal(*w, *g),
        (Val::H(w, hint_set), Point::H(g)) => hist_matches(w, g, *hint_set),
        _ => false,
    }
}

fn hist_matches(exp: &FloatHistogram, cur: &FloatHistogram, hint_set: bool) -> bool {
    let (mut e, mut c) = (exp.clone(), cur.clone());
    e.compact();
    c.compact();
    let same = |a: Vec<(i32, f64)>, b: Vec<(i32, f64)>| {
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| x.0 == y.0 && almost_equal(x.1, y.1))
    };
    e.schema == c.schema
        && almost_equal(e.count, c.count)
        && almost_equal(e.sum, c.sum)
        && (!e.uses_custom_buckets() || e.custom_values == c.custom_values)
        && e.zero_threshold == c.zero_threshold
        && almost_equal(e.zero_count, c.zero_count)
        && same(e.negative_pairs().collect(), c.negative_pairs().collect())
        && same(e.positive_pairs().collect(), c.positive_pairs().collect())
        && (!hint_set || e.hint == c.hint)
}

fn fmt_point(p: &Point) -> String {
    match p {
        Point::F(v) => v.to_string(),
        Point::H(h) => format!("{h:?}"),
    }
}

fn fmt_result(v: &QueryValue) -> String {
    match v {
        QueryValue::Scalar(s) => format!("scalar {s}"),
        QueryValue::String(s) => format!("string {s:?}"),
        QueryValue::Vector(v) => {
            let parts: Vec<String> = v
                .iter()
                .take(6)
                .map(|(l, x)| format!("{l} {}", fmt_point(x)))
                .collect();
            format!("vector[{}] {}", v.len(), parts.join("; "))
        }
        QueryValue::Matrix(m) => {
            let parts: Vec<String> = m
                .iter()
                .take(4)
                .map(|(l, p)| format!("{l} {p:?}"))
                .collect();
            format!("matrix[{}] {}", m.len(), parts.join("; "))
        }
    }
}

async fn run_eval(
    store: &MemStore,
    tenant: &TenantId,
    cmd: &str,
    block: &[&str],
) -> Result<Outcome, String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let verb = words[0];
    let mut e = parse_expectations(block)?;
    match verb {
        "eval" => {}
        "eval_fail" => e.fail = Some(None),
        "eval_ordered" => e.ordered = true,
        "eval_warn" => e.warn.push(None),
        "eval_info" => e.info.push(None),
        other => return Err(format!("unknown command {other}")),
    }
    // eval instant at T Q | eval range from A to B step S Q
    let (range, query) = match words.get(1) {
        Some(&"instant") => {
            let t = parse_time(words.get(3).ok_or("missing time")?)?;
            let q = cmd
                .splitn(5, char::is_whitespace)
                .nth(4)
                .unwrap_or("")
                .trim();
            ((t, t, 0), q)
        }
        Some(&"range") => {
            let a = parse_time(words.get(3).ok_or("missing start")?)?;
            let b = parse_time(words.get(5).ok_or("missing end")?)?;
            let s = parse_time(words.get(7).ok_or("missing step")?)?;
            let q = cmd
                .splitn(9, char::is_whitespace)
                .nth(8)
                .unwrap_or("")
                .trim();
            ((a, b, s), q)
        }
        _ => return Err(format!("bad eval {cmd:?}")),
    };
    check(store, tenant, &e, range, query).await
}

async fn check(
    store: &MemStore,
    tenant: &TenantId,
    e: &Expectations,
    range: (i64, i64, i64),
    query: &str,
) -> Result<Outcome, String> {
    let opts = EngineOptions::default();
    let res: Result<QueryResult, String> = async {
        let src = crate::promql::parse::parse_source(query).map_err(|e| e.to_string())?;
        if range.2 == 0 {
            promql::instant_query_src(store, tenant, opts, &src, range.0)
                .await
                .map_err(|e| e.to_string())
        } else {
            promql::range_query_src(store, tenant, opts, &src, range.0, range.1, range.2)
                .await
                .map_err(|e| e.to_string())
        }
    }
    .await;
    let res = match (res, &e.fail) {
        (Err(err), Some(m)) => {
            return Ok(match m {
                Some(m) if !m.matches(&err) => {
                    Outcome::Fail(format!("error {err:?} does not match the expected message"))
                }
                _ => Outcome::Pass,
            });
        }
        (Err(err), None) => return Ok(Outcome::Fail(format!("unexpected error: {err}"))),
        (Ok(r), Some(_)) => {
            return Ok(Outcome::Fail(format!(
                "expected an error, got {}",
                fmt_result(&r.value)
            )));
        }
        (Ok(r), None) => r,
    };
    for (list, want, none, kind) in [
        (&res.warnings, &e.warn, e.no_warn, "warn"),
        (&res.infos, &e.info, e.no_info, "info"),
    ] {
        if none && !list.is_empty() {
            return Ok(Outcome::Fail(format!(
                "unexpected {kind} annotations: {list:?}"
            )));
        }
        for w in want {
            let ok = match w {
                None => !list.is_empty(),
                // Positions included: "... (1:5)" must match exactly.
                Some(m) => list.iter().any(|a| m.matches(a)),
            };
            if !ok {
                return Ok(Outcome::Fail(format!(
                    "expected {kind} annotation not found; got {list:?}"
                )));
            }
        }
    }
    let fail = |why: String| Ok(Outcome::Fail(why));
    if let Some(s) = &e.string {
        return match &res.value {
            QueryValue::String(got) if got == s => Ok(Outcome::Pass),
            other => fail(format!("expected string {s:?}, got {}", fmt_result(other))),
        };
    }
    match &res.value {
        QueryValue::Scalar(v) => {
            if range.2 != 0 {
                return fail("scalar result of a range query".into());
            }
            match e.series.as_slice() {
                [(None, p)]
                    if p.len() == 1
                        && p[0]
                            .as_ref()
                            .and_then(Val::float)
                            .is_some_and(|x| almost_equal(x, *v)) =>
                {
                    Ok(Outcome::Pass)
                }
                _ => fail(format!("got scalar {v}")),
            }
        }
        QueryValue::String(s) => fail(format!("got string {s:?}")),
        QueryValue::Vector(got) => {
            if got.len() != e.series.len() {
                return fail(format!(
                    "expected {} series, got {}",
                    e.series.len(),
                    fmt_result(&res.value)
                ));
            }
            for (k, (want_l, want_p)) in e.series.iter().enumerate() {
                let Some(want_l) = want_l else {
                    return fail(format!("expected a scalar, got {}", fmt_result(&res.value)));
                };
                let found = if e.ordered {
                    got.get(k).filter(|g| &g.0 == want_l)
                } else {
                    got.iter().find(|g| &g.0 == want_l)
                };
                let Some((_, v)) = found else {
                    return fail(format!(
                        "series {want_l} not found (or out of order) in {}",
                        fmt_result(&res.value)
                    ));
                };
                match want_p.as_slice() {
                    [Some(w)] if point_matches(w, v) => {}
                    _ => {
                        return fail(format!(
                            "{want_l}: expected {want_p:?}, got {}",
                            fmt_point(v)
                        ));
                    }
                }
            }
            Ok(Outcome::Pass)
        }
        QueryValue::Matrix(got) => {
            let (start, step) = match e.range_vector {
                Some((a, _, s)) => (a, s),
                None if range.2 != 0 => (range.0, range.2),
                None => {
                    return fail(format!(
                        "instant query returned a range vector: {}",
                        fmt_result(&res.value)
                    ));
                }
            };
            let want: Vec<(&Labels, Vec<(i64, &Val)>)> = e
                .series
                .iter()
                .filter_map(|(l, p)| {
                    let l = l.as_ref()?;
                    let pts: Vec<(i64, &Val)> = p
                        .iter()
                        .enumerate()
                        .filter_map(|(k, v)| v.as_ref().map(|v| (start + k as i64 * step, v)))
                        .collect();
                    Some((l, pts))
                })
                .collect();
            let want: Vec<_> = want.into_iter().filter(|(_, p)| !p.is_empty()).collect();
            if want.len() != got.len() {
                return fail(format!(
                    "expected {} series, got {}",
                    want.len(),
                    fmt_result(&res.value)
                ));
            }
            for (l, pts) in &want {
                let Some((_, g)) = got.iter().find(|g| &g.0 == *l) else {
                    return fail(format!(
                        "series {l} not found in {}",
                        fmt_result(&res.value)
                    ));
                };
                if g.len() != pts.len()
                    || g.iter()
                        .zip(pts)
                        .any(|(a, b)| a.0 != b.0 || !point_matches(b.1, &a.1))
                {
                    return fail(format!("{l}: expected {pts:?}, got {g:?}"));
                }
            }
            Ok(Outcome::Pass)
        }
    }
}

/// Unused label constructor kept for doc links.
#[allow(dead_code)]
fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}
