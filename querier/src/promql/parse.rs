//! Parsing through `promql-parser`, plus one thing it cannot express: Go strings may hold
//! invalid UTF-8 (`"\xff"`), Rust strings cannot. Before parsing, `\xNN` escapes of bytes
//! 0x80–0xFF inside string literals become private-use characters U+F780+NN (the
//! "surrogateescape" idea), so label-name validation can still reject them as Prometheus does
//! and messages can print them back as `\xNN`.

use promql_parser::parser::Expr;

const ESCAPE_BASE: u32 = 0xF700;

/// Parses a PromQL expression.
pub fn parse(query: &str) -> Result<Expr, String> {
    promql_parser::parser::parse(&escape_invalid_bytes(query))
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
}
