//! Alert label and annotation templates, as Prometheus expands them: Go's text/template (the
//! `gtmpl` crate) with `$labels`, `$value`, `$externalLabels`, `$externalURL` defined, and
//! Prometheus's functions (`humanize`, `humanize1024`, `humanizeDuration`,
//! `humanizePercentage`, `humanizeTimestamp`, `toUpper`, `toLower`, `title`, `match`,
//! `reReplaceAll`, `stripPort`, `args`, `safeHtml`), and `query` with `first`, `label`,
//! `value`, `strvalue` and `sortByLabel` over its result. `query` runs PromQL for the rule's
//! tenant at the evaluation's time through [`with_query`], which the evaluation sets around
//! the expansion (gtmpl's functions are plain `fn`s: the context travels in a thread-local).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use gtmpl::{Context, Func, FuncError, Template, Value};

/// What Prometheus defines in front of every template.
const PREAMBLE: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// The data a template sees.
pub struct Data<'a> {
    pub labels: &'a [(String, String)],
    pub value: f64,
    pub external_url: &'a str,
}

/// A template `query`: the expression's instant vector as (labels, value), or why not.
pub type QueryFn = Arc<dyn Fn(&str) -> Result<Vec<(Vec<(String, String)>, f64)>, String>>;

thread_local! {
    static QUERY: RefCell<Option<QueryFn>> = const { RefCell::new(None) };
}

/// Runs `f` with `query` answering templates' `query` calls on this thread.
pub fn with_query<T>(query: QueryFn, f: impl FnOnce() -> T) -> T {
    /// Puts the previous query back however `f` ends (a panic included).
    struct Restore(Option<QueryFn>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            QUERY.with(|q| *q.borrow_mut() = previous);
        }
    }
    let _restore = Restore(QUERY.with(|q| q.replace(Some(query))));
    f()
}

fn functions() -> [(&'static str, Func); 19] {
    [
        ("query", query),
        ("first", first),
        ("label", label),
        ("value", value),
        ("strvalue", strvalue),
        ("sortByLabel", sort_by_label),
        ("humanize", humanize),
        ("humanize1024", humanize1024),
        ("humanizeDuration", humanize_duration),
        ("humanizePercentage", humanize_percentage),
        ("humanizeTimestamp", humanize_timestamp),
        ("toUpper", to_upper),
        ("toLower", to_lower),
        ("title", title),
        ("match", match_re),
        ("reReplaceAll", re_replace_all),
        ("stripPort", strip_port),
        ("args", args),
        ("safeHtml", safe_html),
    ]
}

/// Checks every action before gtmpl sees the text: each must be closed (quotes inside actions
/// and comments skipped as Go's lexer skips them), and none may define or call a template
/// (`define`, `template`, `block`: a template calling itself would overflow the stack, and
/// Prometheus's alert templates need none of them). gtmpl's lexer is patched
/// (`vendor/gtmpl/MUNINN.md`) for the inputs that used to hang it; this check refuses them
/// before they reach it anyway.
fn check_actions(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(open) = text[i..].find("{{") {
        i += open + 2;
        // A trim marker and spaces, then maybe a comment.
        let mut j = i;
        if b.get(j) == Some(&b'-') && b.get(j + 1).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        while b.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if text[j..].starts_with("/*") {
            let end = text[j + 2..]
                .find("*/")
                .ok_or_else(|| "unclosed comment".to_string())?;
            let mut k = j + 2 + end + 2;
            while b.get(k).is_some_and(u8::is_ascii_whitespace) {
                k += 1;
            }
            if b.get(k) == Some(&b'-') {
                k += 1;
            }
            if !text[k..].starts_with("}}") {
                return Err("comment ends before closing delimiter".into());
            }
            i = k + 2;
            continue;
        }
        let word: String = text[j..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if matches!(word.as_str(), "define" | "template" | "block") {
            return Err(format!("{{{{{word}}}}} is not allowed in rule templates"));
        }
        let mut closed = false;
        while i < b.len() {
            match b[i] {
                b'}' if b.get(i + 1) == Some(&b'}') => {
                    i += 2;
                    closed = true;
                    break;
                }
                q @ (b'"' | b'\'' | b'`') => {
                    i += 1;
                    while i < b.len() && b[i] != q {
                        if b[i] == b'\\' && q != b'`' {
                            i += 1;
                        }
                        i += 1;
                    }
                    if i >= b.len() {
                        return Err("unterminated quoted string in action".into());
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
        if !closed {
            return Err("unclosed action".into());
        }
    }
    Ok(())
}

fn parse(text: &str) -> Result<Template, String> {
    check_actions(text).map_err(|e| format!("invalid template: {e}"))?;
    let mut t = Template::default();
    t.add_funcs(&functions());
    t.parse(format!("{PREAMBLE}{text}"))
        .map_err(|e| format!("invalid template: {e}"))?;
    Ok(t)
}

/// Checks that `text` parses as a template.
pub fn check(text: &str) -> Result<(), String> {
    Compiled::new(text).map(|_| ())
}

/// A template parsed once (gtmpl's lexer starts a thread per parse), expanded at every
/// evaluation.
pub enum Compiled {
    /// No action: the text itself.
    Plain(String),
    Template(Box<Template>),
}

impl Compiled {
    pub fn new(text: &str) -> Result<Self, String> {
        if !text.contains("{{") {
            return Ok(Compiled::Plain(text.to_string()));
        }
        parse(text).map(|t| Compiled::Template(Box::new(t)))
    }

    /// Expands the template; a failure becomes the text Prometheus shows for it.
    pub fn expand(&self, data: &Data) -> String {
        let t = match self {
            Compiled::Plain(s) => return s.clone(),
            Compiled::Template(t) => t,
        };
        let labels: HashMap<String, Value> = data
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let mut dot: HashMap<String, Value> = HashMap::new();
        dot.insert("Labels".into(), Value::Map(labels));
        dot.insert("ExternalLabels".into(), Value::Map(HashMap::new()));
        dot.insert("ExternalURL".into(), Value::from(data.external_url));
        dot.insert("Value".into(), Value::from(data.value));
        // A panic inside gtmpl (e.g. `printf` with a width Rust's formatter refuses) must not
        // take the group's task down: it becomes the expansion's error text.
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.render(&Context::from(Value::Object(dot)))
                .map_err(|e| e.to_string())
        }));
        match rendered {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => format!("<error expanding template: {e}>"),
            Err(_) => "<error expanding template: the template engine panicked>".into(),
        }
    }
}

/// Parses and expands `text` once.
pub fn expand(text: &str, data: &Data) -> String {
    match Compiled::new(text) {
        Ok(c) => c.expand(data),
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

/// A gtmpl number as f64 (it keeps integral values as integers).
fn number(n: &gtmpl_value::Number) -> Option<f64> {
    n.as_f64()
        .or_else(|| n.as_i64().map(|v| v as f64))
        .or_else(|| n.as_u64().map(|v| v as f64))
}

fn arg_f64(args: &[Value], i: usize) -> Result<f64, FuncError> {
    match args.get(i) {
        Some(Value::Number(n)) => {
            number(n).ok_or_else(|| FuncError::Generic("not a number".into()))
        }
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| FuncError::Generic(format!("cannot parse {s:?} as a number"))),
        Some(Value::Bool(b)) => Ok(f64::from(u8::from(*b))),
        _ => Err(FuncError::Generic("expected a number".into())),
    }
}

fn arg_str(args: &[Value], i: usize) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(number(n).map(go_float).unwrap_or_default()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(Value::NoValue | Value::Nil) | None => Ok(String::new()),
        Some(other) => Ok(other.to_string()),
    }
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(v, 'g', -1, 64)`).
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..21).contains(&exp) {
        let s = format!("{v:e}");
        // Rust writes 1e21 / 1.5e-7; Go writes 1e+21 / 1.5e-07.
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        return format!("{m}e{sign}{digits:0>2}");
    }
    format!("{v}")
}

/// Go's `%.<prec>g`.
pub fn go_g(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let prec = prec.max(1);
    // Round to `prec` significant digits first, then pick the notation from the rounded
    // exponent, as Go does.
    let sci = format!("{:.*e}", prec - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn humanize(args: &[Value]) -> Result<Value, FuncError> {
    let mut v = arg_f64(args, 0)?;
    if v == 0.0 || !v.is_finite() {
        return Ok(Value::from(go_g(v, 4)));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    Ok(Value::from(format!("{}{prefix}", go_g(v, 4))))
}

fn humanize1024(args: &[Value]) -> Result<Value, FuncError> {
    let mut v = arg_f64(args, 0)?;
    if v.abs() <= 1.0 || !v.is_finite() {
        return Ok(Value::from(go_g(v, 4)));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    Ok(Value::from(format!("{}{prefix}", go_g(v, 4))))
}

fn humanize_duration(args: &[Value]) -> Result<Value, FuncError> {
    let mut v = arg_f64(args, 0)?;
    if !v.is_finite() {
        return Ok(Value::from(go_g(v, 4)));
    }
    if v == 0.0 {
        return Ok(Value::from("0s"));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        let out = if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", go_g(v, 4))
        };
        return Ok(Value::from(out));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    Ok(Value::from(format!("{}{prefix}s", go_g(v, 4))))
}

fn humanize_percentage(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(format!(
        "{}%",
        go_g(arg_f64(args, 0)? * 100.0, 4)
    )))
}

/// `humanizeTimestamp`: seconds since the epoch as `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn humanize_timestamp(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg_f64(args, 0)?;
    if !v.is_finite() {
        return Ok(Value::from(go_g(v, 4)));
    }
    let secs = v.floor() as i64;
    let nanos = ((v - v.floor()) * 1e9).round() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, d) = civil_from_days(days);
    let frac = if nanos > 0 {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    } else {
        String::new()
    };
    Ok(Value::from(format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}{frac} +0000 UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(arg_str(args, 0)?.to_uppercase()))
}

fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(arg_str(args, 0)?.to_lowercase()))
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '\'';
    }
    Ok(Value::from(out))
}

fn regex(pattern: &str) -> Result<regex::Regex, FuncError> {
    regex::Regex::new(pattern).map_err(|e| FuncError::Generic(e.to_string()))
}

fn match_re(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex(&arg_str(args, 0)?)?;
    Ok(Value::Bool(re.is_match(&arg_str(args, 1)?)))
}

/// `reReplaceAll pattern replacement text`, with Go's `$1` expansion.
fn re_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex(&arg_str(args, 0)?)?;
    let (rep, text) = (arg_str(args, 1)?, arg_str(args, 2)?);
    Ok(Value::from(
        re.replace_all(&text, rep.as_str()).into_owned(),
    ))
}

fn strip_port(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let host = match s.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        }
        _ => s,
    };
    Ok(Value::from(host))
}

fn args(args: &[Value]) -> Result<Value, FuncError> {
    let m: HashMap<String, Value> = args
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("arg{i}"), v.clone()))
        .collect();
    Ok(Value::Map(m))
}

fn safe_html(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(arg_str(args, 0)?))
}

/// A query result's sample as Prometheus's templates see it: `.Labels` and `.Value`.
fn sample_value(labels: Vec<(String, String)>, v: f64) -> Value {
    let labels: HashMap<String, Value> = labels
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect();
    let mut m = HashMap::new();
    m.insert("Labels".to_string(), Value::Map(labels));
    m.insert("Value".to_string(), Value::from(v));
    Value::Object(m)
}

fn query(args: &[Value]) -> Result<Value, FuncError> {
    let expr = arg_str(args, 0)?;
    let run = QUERY
        .with(|q| q.borrow().clone())
        .ok_or_else(|| FuncError::Generic("query is not available here".into()))?;
    let samples = run(&expr).map_err(FuncError::Generic)?;
    Ok(Value::Array(
        samples
            .into_iter()
            .map(|(l, v)| sample_value(l, v))
            .collect(),
    ))
}

fn sample_field<'a>(s: &'a Value, field: &str) -> Option<&'a Value> {
    match s {
        Value::Object(m) | Value::Map(m) => m.get(field),
        _ => None,
    }
}

fn first(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        Some(Value::Array(v)) => v
            .first()
            .cloned()
            .ok_or_else(|| FuncError::Generic("first() called on vector with no elements".into())),
        _ => Err(FuncError::Generic("first() needs a query result".into())),
    }
}

fn label(args: &[Value]) -> Result<Value, FuncError> {
    let name = arg_str(args, 0)?;
    let v = args
        .get(1)
        .and_then(|s| sample_field(s, "Labels"))
        .and_then(|l| sample_field(l, &name))
        .cloned();
    Ok(v.unwrap_or_else(|| Value::from("")))
}

fn value(args: &[Value]) -> Result<Value, FuncError> {
    args.first()
        .and_then(|s| sample_field(s, "Value"))
        .cloned()
        .ok_or_else(|| FuncError::Generic("value() needs a sample".into()))
}

fn strvalue(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .and_then(|s| sample_field(s, "Labels"))
        .and_then(|l| sample_field(l, "__value__"))
        .cloned();
    Ok(v.unwrap_or_else(|| Value::from("")))
}

fn sort_by_label(args: &[Value]) -> Result<Value, FuncError> {
    let name = arg_str(args, 0)?;
    let Some(Value::Array(v)) = args.get(1) else {
        return Err(FuncError::Generic(
            "sortByLabel needs a query result".into(),
        ));
    };
    let key = |s: &Value| -> String {
        sample_field(s, "Labels")
            .and_then(|l| sample_field(l, &name))
            .map(|v| arg_str(std::slice::from_ref(v), 0).unwrap_or_default())
            .unwrap_or_default()
    };
    let mut v = v.clone();
    v.sort_by_key(key);
    Ok(Value::Array(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_results_feed_first_label_value_and_sort_by_label() {
        let q: QueryFn = Arc::new(|expr: &str| match expr {
            "up" => Ok(vec![
                (vec![("instance".into(), "b".into())], 0.0),
                (vec![("instance".into(), "a".into())], 1.0),
            ]),
            "none" => Ok(vec![]),
            other => Err(format!("no such query {other}")),
        });
        let out = |text: &str| with_query(q.clone(), || render(text, 0.0));
        assert_eq!(out(r#"{{ query "up" | first | label "instance" }}"#), "b");
        assert_eq!(
            out(r#"{{ with query "up" }}{{ . | first | value }}{{ end }}"#),
            "0"
        );
        assert_eq!(
            out(
                r#"{{ range query "up" | sortByLabel "instance" }}{{ .Labels.instance }}{{ .Value }},{{ end }}"#
            ),
            "a1,b0,"
        );
        assert_eq!(
            out(r#"{{ with query "none" }}x{{ else }}empty{{ end }}"#),
            "empty"
        );
        assert!(out(r#"{{ query "none" | first }}"#).contains("no elements"));
        assert!(out(r#"{{ query "zz" }}"#).contains("no such query zz"));
        // Outside an evaluation there is no query to run.
        assert!(render(r#"{{ query "up" }}"#, 0.0).contains("not available"));
    }

    fn render(text: &str, value: f64) -> String {
        let labels = vec![
            ("instance".to_string(), "host-1:9100".to_string()),
            ("job".to_string(), "node".to_string()),
        ];
        expand(
            text,
            &Data {
                labels: &labels,
                value,
                external_url: "http://muninn",
            },
        )
    }

    #[test]
    fn labels_value_and_humanize_expand_as_prometheus_does() {
        assert_eq!(
            render(
                "{{ $labels.instance }} of {{ $labels.job }} at {{ $value }}",
                0.5
            ),
            "host-1:9100 of node at 0.5"
        );
        assert_eq!(render("{{ $value | humanize }}", 1_234_567.0), "1.235M");
        assert_eq!(render("{{ humanize $value }}", 0.000_25), "250u");
        assert_eq!(render("{{ $value | humanize1024 }}", 2048.0), "2ki");
        assert_eq!(render("{{ $value | humanizePercentage }}", 0.256), "25.6%");
        assert_eq!(
            render("{{ $value | humanizeDuration }}", 93_784.0),
            "1d 2h 3m 4s"
        );
        assert_eq!(render("{{ $value | humanizeDuration }}", 0.25), "250ms");
        assert_eq!(
            render("{{ $value | humanizeTimestamp }}", 1_700_000_000.0),
            "2023-11-14 22:13:20 +0000 UTC"
        );
        assert_eq!(render("{{ $labels.instance | stripPort }}", 0.0), "host-1");
        assert_eq!(
            render("{{ if gt $value 1.0 }}high{{ else }}low{{ end }}", 2.0),
            "high"
        );
        assert_eq!(render("{{ printf \"%.1f\" $value }}", 2.25), "2.2");
        assert_eq!(render("{{ $labels.job | toUpper | title }}", 0.0), "NODE");
        assert_eq!(render("{{ $externalURL }}", 0.0), "http://muninn");
        assert!(render("{{ nosuchfunc }}", 0.0).starts_with("<error expanding template"));
        assert!(check("{{ $labels. }}").is_err());
        assert!(check("plain text").is_ok());
    }

    #[test]
    fn every_prefix_of_a_template_is_answered() {
        // gtmpl's lexer spins forever on some unclosed actions; every prefix must come back.
        for full in [
            "{{ $labels.instance }} is {{ $value | humanize }}",
            "{{ if gt $value 1.0 }}a \"{{ printf \"%s\" $labels.job }}\"{{ end }}",
            "{{ `raw }}` }} and {{ '}' }}",
        ] {
            for n in 0..=full.len() {
                let _ = check(&full[..n]);
            }
        }
        assert!(check("{{ \"}}\" $labels.").is_err());
    }

    /// `check` in a thread of its own: a hang fails the test instead of stalling it.
    fn check_within(text: &str) -> Result<(), String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = text.to_string();
        std::thread::spawn(move || {
            let _ = tx.send(check(&t));
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("checking {text:?} hangs"))
    }

    #[test]
    fn inputs_that_hung_gtmpl_are_answered() {
        for t in [
            "{{ \"\\\\\" }}\" ",
            "{{/* \"*/}}{{ \" }}\" ",
            "{{ $labels. ",
            "{{ x€ }}",
            "{{ '\\\\' }}' ",
            "{{/* don't */}}plain",
        ] {
            let _ = check_within(t);
        }
        assert!(
            check_within("{{/* don't */}}plain").is_ok(),
            "a comment with a quote"
        );
        assert!(
            check_within("{{ \"a\\\\\" }}").is_ok(),
            "an escaped backslash ends the string"
        );
        for t in [
            "{{define \"x\"}}{{template \"x\"}}{{end}}{{template \"x\"}}",
            "{{- template \"x\" }}",
            "{{ block \"b\" . }}{{ end }}",
        ] {
            let e = check_within(t).unwrap_err();
            assert!(e.contains("not allowed"), "{t}: {e}");
        }
        let huge = expand(
            "{{ printf \"%70000d\" 1 }}",
            &Data {
                labels: &[],
                value: 1.0,
                external_url: "",
            },
        );
        assert!(
            huge.len() < 200 || huge.len() >= 70_000,
            "answered, not panicked"
        );
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(100.0), "100");
        assert_eq!(go_float(0.1), "0.1");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-7), "1.5e-07");
        assert_eq!(go_g(1234.5678, 4), "1235");
        assert_eq!(go_g(12345.0, 4), "1.234e+04");
        assert_eq!(go_g(0.0001234, 4), "0.0001234");
    }
}
