//! JSON exactly as Prometheus's API writes it: Go's string escaping (HTML characters as
//! `\u003c`...), sample values as strings in Go's shortest `'f'` format (`"NaN"`, `"+Inf"`),
//! and timestamps as seconds with up to three decimals.

use std::fmt::Write as _;

use muninn_storage::histogram::FloatHistogram;
use muninn_storage::labels::Labels;

/// Appends `s` as a JSON string with Go's `encoding/json` escaping.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A sample value as Prometheus formats it (`strconv.FormatFloat(v, 'f', -1, 64)`).
pub fn write_value(out: &mut String, v: f64) {
    out.push('"');
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // Rust's Display is the shortest round-trip form without exponent, as Go's 'f', -1.
        let _ = write!(out, "{v}");
    }
    out.push('"');
}

/// A millisecond timestamp as seconds, the way Prometheus's `marshalTimestamp` does.
pub fn write_timestamp(out: &mut String, t: i64) {
    let mut t = t;
    if t < 0 {
        out.push('-');
        t = t.wrapping_neg();
    }
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

/// A label set as a JSON object.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &l.name);
        out.push(':');
        write_str(out, &l.value);
    }
    out.push('}');
}

/// `[ts,"value"]`.
pub fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_value(out, v);
    out.push(']');
}

/// A native histogram as Prometheus writes it: count, sum and the populated buckets as
/// `[boundary_rule, lower, upper, count]` (rule 0: `(a,b]`, 1: `[a,b)`, 2: `(a,b)`, 3: `[a,b]`).
pub fn write_histogram(out: &mut String, h: &FloatHistogram) {
    out.push_str("{\"count\":");
    write_value(out, h.count);
    out.push_str(",\"sum\":");
    write_value(out, h.sum);
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(if first { ",\"buckets\":[" } else { "," });
        first = false;
        let rule = match (b.lower_inclusive, b.upper_inclusive) {
            (true, true) => 3,
            (true, false) => 1,
            (false, true) => 0,
            (false, false) => 2,
        };
        let _ = write!(out, "[{rule},");
        write_value(out, b.lower);
        out.push(',');
        write_value(out, b.upper);
        out.push(',');
        write_value(out, b.count);
        out.push(']');
    }
    if !first {
        out.push(']');
    }
    out.push('}');
}

/// `[ts,{histogram}]`.
pub fn write_hist_point(out: &mut String, t: i64, h: &FloatHistogram) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_histogram(out, h);
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_compatible() {
        let mut s = String::new();
        write_str(&mut s, "a<b>&\"\n\u{1}");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\n\u0001""#);
        let f = |v: f64| {
            let mut s = String::new();
            write_value(&mut s, v);
            s
        };
        assert_eq!(f(1.0), "\"1\"");
        assert_eq!(f(0.1), "\"0.1\"");
        assert_eq!(f(1e21), "\"1000000000000000000000\"");
        assert_eq!(f(1e-7), "\"0.0000001\"");
        assert_eq!(f(f64::NAN), "\"NaN\"");
        assert_eq!(f(f64::NEG_INFINITY), "\"-Inf\"");
        let ts = |t: i64| {
            let mut s = String::new();
            write_timestamp(&mut s, t);
            s
        };
        assert_eq!(ts(1_500), "1.500");
        assert_eq!(ts(1_005), "1.005");
        assert_eq!(ts(2_000), "2");
        assert_eq!(ts(-1_500), "-1.500");
    }
}
