//! Label matchers with Prometheus's semantics.
//!
//! Regexes are fully anchored (`^(?s:re)$`), and a label that is absent matches as if its
//! value were the empty string, so `{foo=""}` selects series without `foo` and `{foo!=""}`
//! those with it.

use regex::Regex;

use crate::{Error, Result};

/// The four matcher types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// One matcher, its regex compiled once.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher, compiling the regex of `=~`/`!~`.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?s:{value})$")).map_err(|e| Error::BadRegex {
                    pattern: value.clone(),
                    source: Box::new(e),
                })?,
            ),
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// Whether a label value (empty when the label is absent) matches.
    #[inline]
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether the empty value matches, i.e. series without the label are selected.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_regex_and_empty() {
        let m = Matcher::new(MatchOp::Regex, "job", "api|web").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("api2"));
        assert!(!m.matches_empty());
        let m = Matcher::new(MatchOp::NotRegex, "job", "a.*").unwrap();
        assert!(m.matches_empty());
        assert!(!m.matches("abc"));
        let m = Matcher::new(MatchOp::Regex, "x", "a.b").unwrap();
        assert!(
            m.matches("a\nb"),
            "(?s): dot matches newline as in Prometheus"
        );
        assert!(Matcher::new(MatchOp::Regex, "x", "(").is_err());
    }
}
