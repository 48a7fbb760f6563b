//! Splitting a range query by interval, and what a query's text says about how it may be
//! split and cached.
//!
//! A range query is evaluated independently at each step `start + k*step`: a piece holding
//! the steps of one interval (a multiple of `--query-frontend.split-queries-by-interval`
//! since the epoch) gives exactly those steps' answers, so the pieces' answers together are
//! the whole query's. Subqueries align their inner steps to absolute time, so they split the
//! same way. What depends on the whole query's range does not: `@ start()`, `@ end()` and
//! the functions `start()`, `end()`, `range()`. Such queries go downstream in one piece.

use promql_parser::parser::{AtModifier, Expr, Offset};

/// Grid timestamps `start..=end` (ms) of a range query with a given step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
}

/// The pieces of `start..=end` by `interval` (ms), each from its first step to its last; one
/// piece when `interval` is 0.
pub fn split(start: i64, end: i64, step: i64, interval: i64) -> Vec<Span> {
    if interval <= 0 || step <= 0 {
        return vec![Span { start, end }];
    }
    let mut out = vec![];
    let mut s = start;
    while s <= end {
        let boundary = s
            .div_euclid(interval)
            .checked_add(1)
            .and_then(|i| i.checked_mul(interval))
            .map_or(i64::MAX, |b| b - 1);
        let lim = end.min(boundary);
        let e = s + (lim - s) / step * step;
        out.push(Span { start: s, end: e });
        match e.checked_add(step) {
            Some(n) => s = n,
            None => break,
        }
    }
    out
}

/// Calls `f` on every node of `e`.
pub fn visit(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match e {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                visit(p, f);
            }
            visit(&a.expr, f);
        }
        Expr::Unary(u) => visit(&u.expr, f),
        Expr::Binary(b) => {
            visit(&b.lhs, f);
            visit(&b.rhs, f);
        }
        Expr::Paren(p) => visit(&p.expr, f),
        Expr::Subquery(s) => visit(&s.expr, f),
        Expr::Call(c) => c.args.args.iter().for_each(|a| visit(a, f)),
        _ => {}
    }
}

/// The `@` and `offset` modifiers of a node, if it has them.
fn modifiers(e: &Expr) -> Option<(&Option<AtModifier>, &Option<Offset>)> {
    match e {
        Expr::VectorSelector(vs) => Some((&vs.at, &vs.offset)),
        Expr::MatrixSelector(ms) => Some((&ms.vs.at, &ms.vs.offset)),
        Expr::Subquery(sq) => Some((&sq.at, &sq.offset)),
        _ => None,
    }
}

/// Whether the pieces of a split give the whole query's answer (see the module doc).
pub fn splittable(e: &Expr) -> bool {
    let mut ok = true;
    visit(e, &mut |n| {
        if let Expr::Call(c) = n
            && matches!(c.func.name, "start" | "end" | "range")
        {
            ok = false;
        }
        if let Some((Some(AtModifier::Start | AtModifier::End), _)) = modifiers(n) {
            ok = false;
        }
    });
    ok
}

/// How far into the future (ms) the query reads relative to its steps (negative offsets),
/// and the latest fixed `@` time it reads at, if any: results are cacheable only where
/// those reads are older than the freshness limit too.
pub fn reach(e: &Expr) -> (i64, Option<i64>) {
    // Negative offsets nest (a subquery's and its selector's add up); positive ones are
    // ignored, which can only overstate how far ahead the query reads.
    fn walk(e: &Expr, ahead_here: i64, ahead: &mut i64, latest_at: &mut Option<i64>) {
        let mut here = ahead_here;
        if let Some((at, offset)) = modifiers(e) {
            if let Some(Offset::Neg(d)) = offset {
                here = here.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            }
            if let Some(AtModifier::At(t)) = at {
                let ms = at_ms(t);
                *latest_at = Some(latest_at.map_or(ms, |l| l.max(ms)));
            }
        }
        *ahead = (*ahead).max(here);
        let mut children: Vec<&Expr> = vec![];
        match e {
            Expr::Aggregate(a) => {
                children.extend(a.param.as_deref());
                children.push(&a.expr);
            }
            Expr::Unary(u) => children.push(&u.expr),
            Expr::Binary(b) => children.extend([&*b.lhs, &*b.rhs]),
            Expr::Paren(p) => children.push(&p.expr),
            Expr::Subquery(s) => children.push(&s.expr),
            Expr::Call(c) => children.extend(c.args.args.iter().map(|a| &**a)),
            _ => {}
        }
        for c in children {
            walk(c, here, ahead, latest_at);
        }
    }
    let (mut ahead, mut latest_at) = (0, None);
    walk(e, 0, &mut ahead, &mut latest_at);
    (ahead, latest_at)
}

/// An `@` time in ms (negative before the epoch).
pub fn at_ms(t: &std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn pieces_follow_interval_boundaries_on_the_step_grid() {
        // 23:00:30 .. 02:00:30 the next day... with a 24h interval split at midnight.
        let day = 24 * H;
        let start = day - H + 30_000;
        let end = day + 2 * H + 30_000;
        let p = split(start, end, 60_000, day);
        assert_eq!(
            p,
            vec![
                Span {
                    start,
                    end: day - 30_000
                },
                Span {
                    start: day + 30_000,
                    end
                },
            ]
        );
        // Every step of the whole query is in exactly one piece.
        let steps: Vec<i64> = p
            .iter()
            .flat_map(|s| {
                (0..)
                    .map(move |k| s.start + k * 60_000)
                    .take_while(move |t| *t <= s.end)
            })
            .collect();
        let want: Vec<i64> = (0..)
            .map(|k| start + k * 60_000)
            .take_while(|t| *t <= end)
            .collect();
        assert_eq!(steps, want);
    }

    #[test]
    fn steps_longer_than_the_interval_and_no_interval() {
        let p = split(0, 10 * H, 5 * H, H);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|s| s.start == s.end));
        assert_eq!(split(5, 500, 7, 0), vec![Span { start: 5, end: 500 }]);
        assert_eq!(split(-H, -1, 1000, H).len(), 1);
    }

    #[test]
    fn what_depends_on_the_whole_range_is_not_split() {
        let p = |q: &str| promql_parser::parser::parse(q).unwrap();
        assert!(splittable(&p("sum(rate(x[5m] @ 1000))")));
        assert!(splittable(&p(
            "max_over_time(rate(x[5m])[1h:1m] offset 1h)"
        )));
        assert!(!splittable(&p("x @ start()")));
        assert!(!splittable(&p("rate(x[5m] @ end())")));
        assert!(!splittable(&p("sum_over_time(x[1h:1m] @ end())")));
        assert!(!splittable(&p("x - x offset 1h + end()")));
        assert_eq!(
            reach(&p("max_over_time((x offset -1h)[10m:1m] offset -1h)")).0,
            2 * H,
            "nested negative offsets add up"
        );
        assert_eq!(
            reach(&p("x offset -5m + y @ 100")),
            (300_000, Some(100_000))
        );
    }
}
