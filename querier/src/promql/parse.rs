//! Parsing through `promql-parser`, plus one thing it cannot express: Go strings may hold
//! invalid UTF-8 (`"\xff"`), Rust strings cannot. Before parsing, `\xNN` escapes of bytes
//! 0x80–0xFF inside string literals become private-use characters U+F780+NN (the
//! "surrogateescape" idea), so label-name validation can still reject them as Prometheus does
//! and messages can print them back as `\xNN`.
//!
//! Hostile queries: the parser, dropping an AST and evaluating one all recurse once per
//! level, and a stack overflow aborts the process. So before parsing, [`check_depth`] bounds
//! the depth of the AST the text can produce (nested brackets, and operator chains such as
//! `1+1+1...` or `- - -1`, which nest without brackets) and refuses anything deeper than
//! [`MAX_DEPTH`]. A panic inside the parser (it converts some numbers with panicking
//! conversions) becomes a parse error.

use promql_parser::parser::Expr;

const ESCAPE_BASE: u32 = 0xF700;

/// The deepest AST a query may produce: levels of parentheses, brackets, calls, aggregations,
/// subqueries and operators.
pub const MAX_DEPTH: usize = 256;

/// Parses a PromQL expression.
pub fn parse(query: &str) -> Result<Expr, String> {
    parse_source(query).map(|s| s.expr)
}

/// A parsed query with its text and the byte spans of its expression nodes (post-order, as
/// `promql_parser::parser::parse_with_spans` gives them), for annotation positions.
#[derive(Clone, Debug)]
pub struct Source {
    pub expr: Expr,
    pub text: String,
    pub spans: Vec<(usize, usize)>,
}

/// Parses a PromQL expression, keeping what annotation positions need.
pub fn parse_source(query: &str) -> Result<Source, String> {
    check_depth(query, MAX_DEPTH)?;
    let escaped = escape_invalid_bytes(query);
    match std::panic::catch_unwind(|| promql_parser::parser::parse_with_spans(&escaped)) {
        Ok(r) => r.map(|(expr, spans)| Source {
            expr,
            text: escaped.to_string(),
            spans,
        }),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the parser failed".into());
            Err(format!("parse error: {msg}"))
        }
    }
}

/// `line:col` of each expression node of `src` (by the node's address), as Prometheus's
/// `PositionRange.StartPosInput` writes positions; empty if the spans do not line up with the
/// tree (then annotations go without positions rather than with wrong ones).
pub fn positions(src: &Source) -> std::collections::HashMap<usize, String> {
    fn walk(e: &Expr, order: &mut Vec<Option<usize>>) {
        match e {
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    walk(p, order);
                }
                walk(&a.expr, order);
            }
            Expr::Unary(u) => walk(&u.expr, order),
            Expr::Binary(b) => {
                walk(&b.lhs, order);
                walk(&b.rhs, order);
            }
            Expr::Paren(p) => walk(&p.expr, order),
            Expr::Subquery(s) => walk(&s.expr, order),
            // The vector selector of a range selector was a node of its own while parsing.
            Expr::MatrixSelector(_) => order.push(None),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, order)),
            _ => {}
        }
        order.push(Some(e as *const Expr as usize));
    }
    let mut order = Vec::new();
    walk(&src.expr, &mut order);
    let mut out = std::collections::HashMap::new();
    if order.len() != src.spans.len() {
        return out;
    }
    // Operators are also found by their payload's address (what their evaluators hold).
    let mut payload: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    fn payloads(e: &Expr, out: &mut std::collections::HashMap<usize, usize>) {
        let me = e as *const Expr as usize;
        match e {
            Expr::Aggregate(a) => {
                out.insert(a as *const _ as usize, me);
                if let Some(p) = &a.param {
                    payloads(p, out);
                }
                payloads(&a.expr, out);
            }
            Expr::Binary(b) => {
                out.insert(b as *const _ as usize, me);
                payloads(&b.lhs, out);
                payloads(&b.rhs, out);
            }
            Expr::Call(c) => {
                out.insert(c as *const _ as usize, me);
                c.args.args.iter().for_each(|a| payloads(a, out));
            }
            Expr::Unary(u) => payloads(&u.expr, out),
            Expr::Paren(p) => payloads(&p.expr, out),
            Expr::Subquery(s) => payloads(&s.expr, out),
            _ => {}
        }
    }
    payloads(&src.expr, &mut payload);
    for (node, &(start, _)) in order.iter().zip(&src.spans) {
        let Some(addr) = node else { continue };
        let Some(before) = src.text.get(..start) else {
            continue;
        };
        let line = before.matches('\n').count() + 1;
        let col = start - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        out.insert(*addr, format!("{line}:{col}"));
    }
    let by_payload: Vec<(usize, String)> = payload
        .iter()
        .filter_map(|(p, node)| out.get(node).map(|v| (*p, v.clone())))
        .collect();
    out.extend(by_payload);
    out
}

/// One bracket group of the depth scan (the whole query is the outermost one).
#[derive(Default)]
struct Group {
    /// The opening bracket; 0 for the whole query.
    open: u8,
    /// Operators in the current comma-separated part.
    ops: usize,
    /// Depth contributed by the bracket groups of the current operand (`f(x)[5m:1m]`).
    operand: usize,
    /// Deepest operand of the current part.
    part_operand: usize,
    /// Deepest finished part.
    parts: usize,
}

impl Group {
    fn end_operand(&mut self) {
        self.part_operand = self.part_operand.max(self.operand);
        self.operand = 0;
    }

    fn end_part(&mut self) {
        self.end_operand();
        // A part without brackets is still one leaf deep.
        self.parts = self.parts.max(self.ops + self.part_operand.max(1));
        self.ops = 0;
        self.part_operand = 0;
    }

    /// An upper bound of the depth of the AST of this group's contents.
    fn depth(mut self) -> usize {
        self.end_part();
        self.parts
    }
}

/// Refuses a query whose AST could be deeper than `limit`, from its text alone (linear, no
/// recursion, string literals and comments skipped).
///
/// The bound: within one bracket group, the operators of a comma-separated part form a tree
/// over its operands, so the part is at most (its operators + its deepest operand) deep; an
/// operand is at most the sum of its bracket groups (`sum by (l) (x)`, `f(x)[5m:1m]`), each
/// adding one node (paren, call, aggregation, subquery) to its contents' depth. Matchers
/// inside `{}` are not operators.
pub fn check_depth(q: &str, limit: usize) -> Result<(), String> {
    let too_deep = || {
        format!(
            "query is nested too deeply: more than {limit} levels of parentheses, brackets, function calls, subqueries or operators"
        )
    };
    let b = q.as_bytes();
    let mut stack: Vec<Group> = vec![Group::default()];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let in_braces = stack.last().is_some_and(|g| g.open == b'{');
        match c {
            b'"' | b'\'' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                if stack.len() > limit {
                    return Err(too_deep());
                }
                stack.push(Group {
                    open: c,
                    ..Group::default()
                });
            }
            // An unmatched closing bracket is left to the parser to report.
            b')' | b']' | b'}' if stack.len() > 1 => {
                close(&mut stack, limit).ok_or_else(too_deep)?;
            }
            b',' => {
                if let Some(g) = stack.last_mut() {
                    g.end_part();
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' => {
                // Two-character operators (`==`, `!=`, `<=`, `>=`, `=~`, `!~`) count once.
                if matches!(b.get(i + 1), Some(b'=' | b'~'))
                    && matches!(c, b'=' | b'!' | b'<' | b'>')
                {
                    i += 1;
                }
                if !in_braces {
                    operator(&mut stack, limit).ok_or_else(too_deep)?;
                }
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b':' | b'.'))
                {
                    i += 1;
                }
                let word = &q[start..i];
                if !in_braces
                    && ["and", "or", "unless", "atan2"]
                        .iter()
                        .any(|k| word.eq_ignore_ascii_case(k))
                {
                    operator(&mut stack, limit).ok_or_else(too_deep)?;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    while stack.len() > 1 {
        close(&mut stack, limit).ok_or_else(too_deep)?;
    }
    let top = stack.pop().map_or(0, Group::depth);
    if top > limit {
        return Err(too_deep());
    }
    Ok(())
}

/// Counts an operator in the innermost group; `None` past the limit.
fn operator(stack: &mut [Group], limit: usize) -> Option<()> {
    let g = stack.last_mut()?;
    g.end_operand();
    g.ops += 1;
    (g.ops <= limit).then_some(())
}

/// Closes the innermost group, adding its depth to the operand it belongs to; `None` past
/// the limit.
fn close(stack: &mut Vec<Group>, limit: usize) -> Option<()> {
    let g = stack.pop()?;
    let depth = if g.open == b'{' { 1 } else { g.depth() + 1 };
    let parent = stack.last_mut()?;
    parent.operand = parent.operand.saturating_add(depth);
    (depth <= limit && parent.operand <= limit).then_some(())
}

fn escape_invalid_bytes(q: &str) -> std::borrow::Cow<'_, str> {
    if !q.contains("\\x") {
        return q.into();
    }
    let b = q.as_bytes();
    let mut out = String::with_capacity(q.len());
    let mut in_str: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match in_str {
            None if c == b'"' || c == b'\'' => in_str = Some(c),
            Some(qc) if c == qc => in_str = None,
            Some(_) if c == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' => {
                if let Some(v) = q
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    && v >= 0x80
                {
                    out.push_str(&format!("\\u{:04X}", ESCAPE_BASE + u32::from(v)));
                    i += 4;
                    continue;
                }
            }
            Some(_) if c == b'\\' && i + 1 < b.len() => {
                out.push('\\');
                out.push(b[i + 1] as char);
                i += 2;
                continue;
            }
            _ => {}
        }
        // Copy one UTF-8 character.
        let len = match c {
            0..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        out.push_str(q.get(i..i + len).unwrap_or(""));
        i += len;
    }
    out.into()
}

/// Whether a label name is valid (UTF-8, non-empty: Prometheus 3's default scheme).
pub fn valid_label_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(is_escaped_byte)
}

fn is_escaped_byte(c: char) -> bool {
    (ESCAPE_BASE + 0x80..=ESCAPE_BASE + 0xFF).contains(&(c as u32))
}

/// Renders a string as Go's `%q` would, escaped bytes as `\xNN`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if is_escaped_byte(c) {
            out.push_str(&format!("\\x{:02x}", c as u32 - ESCAPE_BASE));
        } else if c == '"' || c == '\\' {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `line:col` of `e` in `src`'s position table.
    fn pos_of(src: &Source, e: &Expr) -> Option<String> {
        positions(src).get(&(e as *const Expr as usize)).cloned()
    }

    #[test]
    fn positions_are_prometheus_line_and_column_of_each_node() {
        let src = parse_source("sum by (job) (\n  rate(foo[5m] offset 1m)\n) / -bar @ 10").unwrap();
        let Expr::Binary(b) = &src.expr else { panic!() };
        assert_eq!(pos_of(&src, &src.expr).as_deref(), Some("1:1"));
        let Expr::Aggregate(a) = b.lhs.as_ref() else {
            panic!()
        };
        assert_eq!(pos_of(&src, &b.lhs).as_deref(), Some("1:1"));
        let Expr::Call(c) = a.expr.as_ref() else {
            panic!()
        };
        assert_eq!(pos_of(&src, &a.expr).as_deref(), Some("2:3"));
        // The range selector, offset included, starts at its metric name.
        assert_eq!(pos_of(&src, &c.args.args[0]).as_deref(), Some("2:8"));
        // A unary minus is a node of its own; `@` belongs to the selector it modifies.
        let Expr::Unary(u) = b.rhs.as_ref() else {
            panic!()
        };
        assert_eq!(pos_of(&src, &b.rhs).as_deref(), Some("3:5"));
        assert_eq!(pos_of(&src, &u.expr).as_deref(), Some("3:6"));
        // Operators are also found by their payload.
        let table = positions(&src);
        assert_eq!(
            table.get(&(a as *const _ as usize)).map(String::as_str),
            Some("1:1")
        );
        assert_eq!(
            table.get(&(c as *const _ as usize)).map(String::as_str),
            Some("2:3")
        );
        assert_eq!(
            table.get(&(b as *const _ as usize)).map(String::as_str),
            Some("1:1")
        );
    }

    #[test]
    fn number_literals_and_parens_line_up_with_the_tree() {
        for q in [
            "-1 + (2)",
            "+foo",
            "((foo))[5m:1m]",
            "-(-1)",
            "count_values(\"x\", -foo)",
        ] {
            let src = parse_source(q).unwrap();
            assert!(!positions(&src).is_empty(), "{q}: spans do not line up");
        }
    }

    #[test]
    fn invalid_bytes_survive_parsing() {
        let e = parse(r#"label_replace(up, "a\xc5z", "", "src", "(.*)")"#).unwrap();
        let Expr::Call(c) = e else { panic!() };
        let Expr::StringLiteral(s) = c.args.args[1].as_ref() else {
            panic!()
        };
        assert!(!valid_label_name(&s.val));
        assert_eq!(go_quote(&s.val), r#""a\xc5z""#);
        assert!(valid_label_name("ÿ"));
        assert!(parse(r#"up{job="x\x41"}"#).is_ok());
    }

    /// The depth of an AST, counted as the scan bounds it (every node one level).
    fn ast_depth(e: &Expr) -> usize {
        1 + match e {
            Expr::Aggregate(a) => ast_depth(&a.expr).max(a.param.as_deref().map_or(0, ast_depth)),
            Expr::Unary(u) => ast_depth(&u.expr),
            Expr::Binary(b) => ast_depth(&b.lhs).max(ast_depth(&b.rhs)),
            Expr::Paren(p) => ast_depth(&p.expr),
            Expr::Subquery(s) => ast_depth(&s.expr),
            Expr::Call(c) => c.args.args.iter().map(|a| ast_depth(a)).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn scan_bound(q: &str) -> usize {
        (1..=2000)
            .find(|&l| check_depth(q, l).is_ok())
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn depth_scan_bounds_the_ast() {
        for q in [
            "up",
            "((((up))))",
            "1 + 2 * 3 - 4 / 5 ^ 6",
            "- - - -1",
            "sum by (job) (rate(http_requests_total{job=~\"a|(b)\", x!=\"((\"}[5m]))",
            "max_over_time((rate(x[5m]) + on(a) group_left(b) y)[1h:1m] offset 5m)",
            "histogram_quantile(0.9, sum by (le) (rate(b[5m]))) > bool 1 and c or d unless e",
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")",
            "atan2(a, b) atan2 c",
            "topk(3, sum without (x) (a * b + c * d))",
            "a[5m:1m][10m:1m]",
            "((a)[5m:1m])[10m:2m]",
            "abs(abs(abs(abs(vector(1)))))",
            "1e-5 + 0x1F # comment (((\n + 2",
            "`raw ((( string`",
        ] {
            let Ok(e) = parse(q) else { continue };
            let (bound, depth) = (scan_bound(q), ast_depth(&e));
            assert!(bound >= depth, "{q}: bound {bound} < AST depth {depth}");
            assert!(
                bound <= 2 * depth + 4,
                "{q}: bound {bound} far above depth {depth}"
            );
        }
    }

    #[test]
    fn deep_queries_are_refused_before_parsing() {
        let limit = MAX_DEPTH;
        let nested = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nested(limit - 1)).is_ok());
        for q in [
            nested(limit),
            nested(100_000),
            "(".repeat(100_000),
            format!("1{}", "+1".repeat(100_000)),
            format!("{}1", "- ".repeat(100_000)),
            format!("{}vector(1){}", "abs(".repeat(limit), ")".repeat(limit)),
            format!("x{}", " or x".repeat(limit)),
            format!("{}x{}", "(x)[5m:1m] + ".repeat(limit), ""),
        ] {
            let e = parse(&q).unwrap_err();
            assert!(
                e.starts_with("query is nested too deeply"),
                "{}: {e}",
                &q[..40]
            );
        }
        assert!(parse(&format!("1{}", "+1".repeat(limit - 2))).is_ok());
        // Brackets inside strings and comments do not count; matchers are not operators.
        let s = format!("up{{a=\"{}\", b!=\"x\"}}", "(".repeat(1000));
        assert!(parse(&s).is_ok());
        assert!(parse(&format!("up # {}\n", "(".repeat(1000))).is_ok());
        let many = (0..300).map(|i| format!("l{i}!=\"v\"")).collect::<Vec<_>>();
        assert!(parse(&format!("up{{{}}}", many.join(","))).is_ok());
    }

    #[test]
    fn parser_panics_become_errors() {
        // promql-parser converts `1e300` seconds with a panicking conversion.
        for q in ["up[1e300]", "up offset 1e300", "up[1e300:1s]"] {
            assert!(parse(q).is_err(), "{q}");
        }
    }
}
