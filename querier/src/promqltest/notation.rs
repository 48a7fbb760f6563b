//! The series notation of Prometheus's test language: `1 2+3x4 _ stale`, and native
//! histograms `{{schema:1 sum:3 count:22 buckets:[5 10 7]}}` with their expansions
//! `{{…}}x3`, `{{…}}+{{…}}x3` and `{{…}}-{{…}}x3` (`../shared/promql-tests/SERIES-NOTATION.md`).

use muninn_storage::STALE_NAN_BITS;
use muninn_storage::histogram::{CounterResetHint, FloatHistogram, Span};

/// One point of a series: a float, or a histogram with whether its counter-reset hint was
/// written out (only then is the hint compared).
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    F(f64),
    H(Box<FloatHistogram>, bool),
}

impl Val {
    /// The float, if this is one.
    pub fn float(&self) -> Option<f64> {
        match self {
            Val::F(v) => Some(*v),
            Val::H(..) => None,
        }
    }
}

/// Points of a series; `None` is a missing sample (`_`).
pub type Points = Vec<Option<Val>>;

/// A number as the notation writes it (`Inf`, `NaN`, `stale`, decimal and exponent forms).
pub fn parse_number(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        "stale" => Some(f64::from_bits(STALE_NAN_BITS)),
        // No hex here: in series notation `0x59` is "0, 59 times more".
        _ => s.parse().ok(),
    }
}

/// Splits the points text into tokens at whitespace outside `{{ }}`.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, None::<usize>);
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'{' && b.get(i + 1) == Some(&b'{') {
            depth += 1;
            start.get_or_insert(i);
            i += 2;
            continue;
        }
        if c == b'}' && b.get(i + 1) == Some(&b'}') {
            depth -= 1;
            i += 2;
            continue;
        }
        if c.is_ascii_whitespace() && depth <= 0 {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
        } else {
            start.get_or_insert(i);
        }
        i += 1;
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

fn list(v: &str) -> Result<Vec<f64>, String> {
    let inner = v
        .trim()
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .ok_or_else(|| format!("bad list {v:?}"))?;
    inner
        .split_whitespace()
        .map(|x| parse_number(x).ok_or_else(|| format!("bad number {x:?}")))
        .collect()
}

/// Parses `{{key:value ...}}` into a histogram and whether its hint was given.
pub fn parse_histogram(desc: &str) -> Result<(FloatHistogram, bool), String> {
    let inner = desc
        .trim()
        .strip_prefix("{{")
        .and_then(|x| x.strip_suffix("}}"))
        .ok_or_else(|| format!("bad histogram {desc:?}"))?;
    // key:value pairs; values in [ ] may hold spaces.
    let mut items: Vec<(&str, String)> = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (k, after) = rest
            .split_once(':')
            .ok_or_else(|| format!("bad histogram item in {desc:?}"))?;
        let after = after.trim_start();
        let (v, tail) = if after.starts_with('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("unclosed list in {desc:?}"))?;
            (&after[..=end], &after[end + 1..])
        } else {
            match after.find(char::is_whitespace) {
                Some(e) => (&after[..e], &after[e..]),
                None => (after, ""),
            }
        };
        items.push((k.trim(), v.to_owned()));
        rest = tail.trim_start();
    }
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let (mut off, mut noff) = (0i32, 0i32);
    let num = |v: &str| parse_number(v).ok_or_else(|| format!("bad number {v:?}"));
    let int = |v: &str| v.parse::<i32>().map_err(|_| format!("bad integer {v:?}"));
    for (k, v) in items {
        match k {
            "schema" => h.schema = int(&v)?,
            "sum" => h.sum = num(&v)?,
            "count" => h.count = num(&v)?,
            "z_bucket" => h.zero_count = num(&v)?,
            "z_bucket_w" => h.zero_threshold = num(&v)?,
            "buckets" => pos = list(&v)?,
            "n_buckets" => neg = list(&v)?,
            "offset" => off = int(&v)?,
            "n_offset" => noff = int(&v)?,
            "custom_values" => h.custom_values = list(&v)?,
            "counter_reset_hint" => {
                hint_set = true;
                h.hint = match v.as_str() {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::Reset,
                    "not_reset" => CounterResetHint::NotReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("bad counter_reset_hint {other:?}")),
                }
            }
            other => return Err(format!("unknown histogram key {other:?}")),
        }
    }
    let span = |n: usize, offset: i32| {
        if n == 0 {
            vec![]
        } else {
            vec![Span {
                offset,
                length: n as u32,
            }]
        }
    };
    h.positive_spans = span(pos.len(), off);
    h.positive_buckets = pos;
    h.negative_spans = span(neg.len(), noff);
    h.negative_buckets = neg;
    Ok((h, hint_set))
}

/// One histogram token: `{{a}}`, `{{a}}xN`, `{{a}}+{{b}}xN`, `{{a}}-{{b}}xN`.
fn histogram_token(tok: &str, out: &mut Points) -> Result<(), String> {
    let end_a = tok.find("}}").ok_or_else(|| format!("bad token {tok:?}"))? + 2;
    let (a, hint_a) = parse_histogram(&tok[..end_a])?;
    let rest = &tok[end_a..];
    if rest.is_empty() {
        out.push(Some(Val::H(Box::new(a), hint_a)));
        return Ok(());
    }
    if let Some(n) = rest.strip_prefix('x') {
        let n: usize = n.parse().map_err(|_| format!("bad token {tok:?}"))?;
        for _ in 0..=n {
            out.push(Some(Val::H(Box::new(a.clone()), hint_a)));
        }
        return Ok(());
    }
    let sub = rest.starts_with('-');
    let rest = &rest[1..];
    let end_b = rest
        .find("}}")
        .ok_or_else(|| format!("bad token {tok:?}"))?
        + 2;
    let (b, hint_b) = parse_histogram(&rest[..end_b])?;
    let n: usize = rest[end_b..]
        .strip_prefix('x')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("bad token {tok:?}"))?;
    // The increment's hint flag decides for the whole sequence, as in Prometheus's parser.
    let hint_set = hint_b || hint_a;
    let mut cur = a;
    out.push(Some(Val::H(Box::new(cur.clone()), hint_set)));
    for _ in 0..n {
        if cur.schema > b.schema {
            return Err(format!(
                "error combining histograms: cannot merge from schema {} to {}",
                b.schema, cur.schema
            ));
        }
        let r = if sub { cur.sub(&b) } else { cur.add(&b) };
        r.map_err(|e| e.to_string())?;
        out.push(Some(Val::H(Box::new(cur.clone()), hint_set)));
    }
    Ok(())
}

/// Expands series notation into points (`None` for `_`).
pub fn expand_points(text: &str) -> Result<Points, String> {
    let mut out = Vec::new();
    for tok in tokens(text) {
        if tok.starts_with("{{") {
            histogram_token(tok, &mut out)?;
            continue;
        }
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad token {tok:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if let Some(v) = parse_number(tok) {
            out.push(Some(Val::F(v)));
            continue;
        }
        let (head, n) = tok
            .rsplit_once('x')
            .ok_or_else(|| format!("bad token {tok:?}"))?;
        let n: i64 = n.parse().map_err(|_| format!("bad token {tok:?}"))?;
        // head is `a`, `a+b` or `a-b` (signs of exponents and of `a` itself excluded).
        let bytes = head.as_bytes();
        let split = (1..bytes.len()).rev().find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (a, b) = match split {
            Some(i) => {
                let a = parse_number(&head[..i]).ok_or_else(|| format!("bad token {tok:?}"))?;
                let b = parse_number(&head[i + 1..]).ok_or_else(|| format!("bad token {tok:?}"))?;
                (a, if bytes[i] == b'-' { -b } else { b })
            }
            None => (
                parse_number(head).ok_or_else(|| format!("bad token {tok:?}"))?,
                0.0,
            ),
        };
        // Prometheus accumulates by repeated addition.
        let mut v = a;
        out.push(Some(Val::F(v)));
        for _ in 0..n {
            v += b;
            out.push(Some(Val::F(v)));
        }
    }
    Ok(out)
}

/// Splits `metric{a="b"} 1 2 3` into the series descriptor and the rest.
pub fn split_series(line: &str) -> (&str, &str) {
    let line = line.trim();
    let mut in_quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if let Some(q) = in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                in_quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_quote = Some(c),
            '{' if line[i..].starts_with("{{") => return (line[..i].trim(), line[i..].trim()),
            '}' => return (&line[..=i], line[i + 1..].trim()),
            c if c.is_whitespace() && !line[..i].contains('{') => {
                return (&line[..i], line[i..].trim());
            }
            _ => {}
        }
    }
    (line, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(p: Points) -> Vec<Option<f64>> {
        p.into_iter().map(|v| v.and_then(|v| v.float())).collect()
    }

    #[test]
    fn series_notation() {
        assert_eq!(
            floats(expand_points("-2+4x3").unwrap()),
            vec![Some(-2.0), Some(2.0), Some(6.0), Some(10.0)]
        );
        assert_eq!(
            floats(expand_points("1-2x2").unwrap()),
            vec![Some(1.0), Some(-1.0), Some(-3.0)]
        );
        assert_eq!(
            floats(expand_points("1x2 _x2 3").unwrap()),
            vec![Some(1.0), Some(1.0), Some(1.0), None, None, Some(3.0)]
        );
        assert!(floats(expand_points("stale").unwrap())[0].unwrap().is_nan());
        assert_eq!(
            floats(expand_points("1e3+1e2x1").unwrap()),
            vec![Some(1000.0), Some(1100.0)]
        );
        assert_eq!(
            split_series(r#"m{a="x y}"} 1 2"#),
            (r#"m{a="x y}"}"#, "1 2")
        );
        assert_eq!(split_series("m 1 2"), ("m", "1 2"));
    }

    #[test]
    fn histogram_notation() {
        let p = expand_points("{{schema:1 sum:3 count:22 buckets:[5 10 7] offset:-1}} _ {{count:1}}+{{count:2 counter_reset_hint:gauge}}x2").unwrap();
        assert_eq!(p.len(), 5);
        let Some(Val::H(h, set)) = &p[0] else {
            panic!()
        };
        assert!(!set);
        assert_eq!((h.schema, h.sum, h.count), (1, 3.0, 22.0));
        assert_eq!(
            h.positive_spans,
            vec![Span {
                offset: -1,
                length: 3
            }]
        );
        let Some(Val::H(h, set)) = &p[4] else {
            panic!()
        };
        assert!(set);
        assert_eq!(h.count, 5.0);
        assert_eq!(h.hint, CounterResetHint::Gauge);
    }
}
