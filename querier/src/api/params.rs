//! Request parameters the way Prometheus reads them: URL query and form-encoded body merged,
//! times as RFC 3339 or decimal Unix seconds, durations as seconds or PromQL durations.
//!
//! Every time and duration is an `i64` of milliseconds, or a `bad_data` error: NaN,
//! infinities and values past `i64` milliseconds never parse, and the range of a
//! `query_range` is checked with overflow-free arithmetic before anything is sized by it.

use std::collections::HashMap;

use crate::{Error, Result};

/// Smallest and largest timestamps Prometheus accepts as "unbounded" (its `MinTime`/`MaxTime`
/// formatted in RFC 3339 by clients such as Grafana).
pub const MIN_TIME_MS: i64 = -9_223_372_036_854_775 + 1;
pub const MAX_TIME_MS: i64 = 9_223_372_036_854_775 - 1;

/// Most points a range query may return per series (as Prometheus).
pub const MAX_POINTS: i64 = 11_000;

/// `start`, `end` and `step` of a range query, in milliseconds, validated as Prometheus
/// does: both times present, `end` not before `start`, a positive step, at most
/// [`MAX_POINTS`] points per series (a range whose length overflows `i64` has too many).
pub fn range(p: &Params) -> Result<(i64, i64, i64)> {
    let bad_time = |k: &str| {
        Error::BadData(format!(
            "invalid parameter \"{k}\": cannot parse \"\" to a valid timestamp"
        ))
    };
    let start = match p.get("start") {
        Some(_) => p.time("start", 0)?,
        None => return Err(bad_time("start")),
    };
    let end = match p.get("end") {
        Some(_) => p.time("end", 0)?,
        None => return Err(bad_time("end")),
    };
    if end < start {
        return Err(Error::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let step = p.duration("step")?.ok_or_else(|| {
        Error::BadData("invalid parameter \"step\": cannot parse \"\" to a valid duration".into())
    })?;
    if step <= 0 {
        return Err(Error::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end
        .checked_sub(start)
        .is_none_or(|span| span / step > MAX_POINTS)
    {
        return Err(Error::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    Ok((start, end, step))
}

/// All parameters of a request, multi-valued.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, Vec<String>>);

impl Params {
    /// Form body values come first, then the URL query's, as Go's `ParseForm`.
    pub fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(b) = form_body {
            for (k, v) in form_urlencoded::parse(b) {
                m.entry(k.into_owned()).or_default().push(v.into_owned());
            }
        }
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                m.entry(k.into_owned()).or_default().push(v.into_owned());
            }
        }
        Self(m)
    }

    /// The first value of `k`, if non-empty.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .get(k)
            .and_then(|v| v.first())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map_or(&[], Vec::as_slice)
    }

    /// A time parameter in milliseconds, or `default` when absent.
    pub fn time(&self, k: &str, default: i64) -> Result<i64> {
        match self.get(k) {
            None => Ok(default),
            Some(s) => parse_time(s).ok_or_else(|| {
                Error::BadData(format!(
                    "invalid parameter \"{k}\": cannot parse \"{s}\" to a valid timestamp"
                ))
            }),
        }
    }

    /// A duration parameter in milliseconds.
    pub fn duration(&self, k: &str) -> Result<Option<i64>> {
        match self.get(k) {
            None => Ok(None),
            Some(s) => parse_duration(s).map(Some).ok_or_else(|| {
                Error::BadData(format!(
                    "invalid parameter \"{k}\": cannot parse \"{s}\" to a valid duration"
                ))
            }),
        }
    }
}

/// Decimal Unix seconds or RFC 3339, to milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        let secs = f.trunc();
        if secs.abs() > (i64::MAX / 1000) as f64 {
            return None;
        }
        let frac = ((f - secs) * 1000.0).round();
        return (secs as i64).checked_mul(1000)?.checked_add(frac as i64);
    }
    parse_rfc3339(s)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff...](Z|±HH:MM)` to milliseconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse::<i64>().ok() };
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut pos = 19;
    let mut ms = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let digits = s.get(start..pos)?;
        if digits.is_empty() {
            return None;
        }
        let padded: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect();
        ms = padded.parse().ok()?;
    }
    let offset_min = match b.get(pos)? {
        b'Z' | b'z' if pos + 1 == b.len() => 0,
        c @ (b'+' | b'-') if pos + 6 == b.len() && b[pos + 3] == b':' => {
            let oh = num(pos + 1..pos + 3)?;
            let om = num(pos + 4..pos + 6)?;
            let o = oh * 60 + om;
            if *c == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((((days * 24 + h) * 60 + mi - offset_min) * 60 + sec) * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds (`15`, `0.5`) or a PromQL duration (`1h30m`, `500ms`) to milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        // `i64::MAX as f64` rounds up to 2^63, which does not fit: compare with `>=`.
        if !ms.is_finite() || ms.abs() >= i64::MAX as f64 {
            return None;
        }
        return Some(ms.round() as i64);
    }
    muninn_proto::duration::parse_duration_ms(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("1700000000.123"), Some(1_700_000_000_123));
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00"),
            Some(1_700_000_000_500)
        );
        assert_eq!(parse_time("abc"), None);
        assert_eq!(parse_time("1e300"), None);
        assert_eq!(parse_time("NaN"), None);
        assert_eq!(parse_duration("15"), Some(15_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("1x"), None);
    }

    fn range_of(q: &str) -> std::result::Result<(i64, i64, i64), String> {
        range(&Params::parse(Some(q), None)).map_err(|e| match e {
            Error::BadData(m) => m,
            other => panic!("not bad_data: {other:?}"),
        })
    }

    #[test]
    fn hostile_times_are_bad_data() {
        assert_eq!(range_of("start=0&end=60&step=15"), Ok((0, 60_000, 15_000)));
        for q in [
            "start=NaN&end=60&step=15",
            "start=0&end=Inf&step=15",
            "start=-Inf&end=60&step=15",
            "start=1e300&end=1e301&step=15",
            "start=0&end=9223372036854775807&step=15",
        ] {
            let e = range_of(q).unwrap_err();
            assert!(e.contains("to a valid timestamp"), "{q}: {e}");
        }
        for q in [
            "start=0&end=60&step=NaN",
            "start=0&end=60&step=Inf",
            "start=0&end=60&step=1e300",
            "start=0&end=60&step=9223372036854775.807",
        ] {
            let e = range_of(q).unwrap_err();
            assert!(e.contains("to a valid duration"), "{q}: {e}");
        }
        for q in [
            "start=0&end=60&step=0",
            "start=0&end=60&step=-1",
            "start=0&end=60&step=0.0001",
        ] {
            let e = range_of(q).unwrap_err();
            assert!(
                e.starts_with("zero or negative query resolution"),
                "{q}: {e}"
            );
        }
        assert_eq!(
            range_of("start=60&end=0&step=1").unwrap_err(),
            "end timestamp must not be before start time"
        );
        let resolution = "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)";
        // The span overflows i64 milliseconds: too many points, not a wrapped negative.
        assert_eq!(
            range_of("start=-9e15&end=9e15&step=1").unwrap_err(),
            resolution
        );
        assert_eq!(
            range_of("start=0&end=11001&step=1").unwrap_err(),
            resolution
        );
        assert_eq!(
            range_of("start=0&end=11000&step=1"),
            Ok((0, 11_000_000, 1000))
        );
    }
}
