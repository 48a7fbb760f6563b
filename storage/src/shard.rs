//! Query shards: the `__query_shard__="<i>_of_<n>"` matcher (Mimir's spelling, 1-based) that
//! the query frontend adds to every selector of a sharded query. It is not a label: stores
//! take it out of the matchers and keep only the series whose label-set hash falls in the
//! shard, so each shard reads a disjoint part of the series and together they read all.

use crate::labels::Labels;
use crate::matcher::{MatchOp, Matcher};
use crate::{Error, Result};

/// The pseudo-label naming a shard.
pub const SHARD_LABEL: &str = "__query_shard__";

/// Shard `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses `<i>_of_<n>` (1 ≤ i ≤ n).
    pub fn parse(v: &str) -> Option<Self> {
        let (i, n) = v.split_once("_of_")?;
        let (i, n): (u64, u64) = (i.parse().ok()?, n.parse().ok()?);
        (i >= 1 && i <= n).then(|| Self {
            index: i - 1,
            count: n,
        })
    }

    /// The matcher value `<i>_of_<n>`.
    pub fn value(&self) -> String {
        format!("{}_of_{}", self.index + 1, self.count)
    }

    /// Takes the shard matcher out of `matchers`. `Ok(None)` without one; an error for a
    /// malformed value, another operator or two different shards.
    pub fn take(matchers: &mut Vec<Matcher>) -> Result<Option<Self>> {
        let mut shard: Option<Self> = None;
        let mut err = None;
        matchers.retain(|m| {
            if m.name != SHARD_LABEL {
                return true;
            }
            match (m.op, Self::parse(&m.value)) {
                (MatchOp::Equal, Some(s)) if shard.is_none_or(|x| x == s) => shard = Some(s),
                _ => {
                    err = Some(Error::BadShard(format!(
                        "invalid query shard matcher {SHARD_LABEL}{}{:?}: expected {SHARD_LABEL}=\"<i>_of_<n>\", one per selector",
                        match m.op {
                            MatchOp::Equal => "=",
                            MatchOp::NotEqual => "!=",
                            MatchOp::Regex => "=~",
                            MatchOp::NotRegex => "!~",
                        },
                        m.value
                    )))
                }
            }
            false
        });
        match err {
            Some(e) => Err(e),
            None => Ok(shard),
        }
    }

    /// Whether the series with these labels (sorted by name, as a `Labels` holds them)
    /// belongs to this shard.
    pub fn contains<'a>(&self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        series_hash(labels) % self.count.max(1) == self.index
    }

    /// [`Self::contains`] for a label set.
    pub fn contains_labels(&self, labels: &Labels) -> bool {
        self.contains(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }
}

/// The hash of a label set (names in order, each `name 0xff value 0xff`); labels with empty
/// values are skipped, as they are absent.
pub fn series_hash<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for (n, v) in labels {
        if v.is_empty() {
            continue;
        }
        h.update(n.as_bytes());
        h.update(&[0xff]);
        h.update(v.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_series_disjointly_and_completely() {
        let n = 16;
        let mut counts = vec![0; n as usize];
        for i in 0..1000 {
            let l = Labels::from_pairs([("__name__", "x"), ("i", &i.to_string())]);
            let mut owners = 0;
            for s in 0..n {
                let shard = Shard { index: s, count: n };
                if shard.contains_labels(&l) {
                    owners += 1;
                    counts[s as usize] += 1;
                }
            }
            assert_eq!(owners, 1);
        }
        assert!(counts.iter().all(|c| *c > 20), "spread: {counts:?}");
    }

    #[test]
    fn the_shard_matcher_is_taken_out() {
        let mut ms = vec![
            Matcher::new(MatchOp::Equal, "__name__", "x").unwrap(),
            Matcher::new(MatchOp::Equal, SHARD_LABEL, "3_of_16").unwrap(),
        ];
        assert_eq!(
            Shard::take(&mut ms).unwrap(),
            Some(Shard {
                index: 2,
                count: 16
            })
        );
        assert_eq!(ms.len(), 1);
        for bad in ["0_of_16", "17_of_16", "x", "1_of_0"] {
            let mut ms = vec![Matcher::new(MatchOp::Equal, SHARD_LABEL, bad).unwrap()];
            assert!(Shard::take(&mut ms).is_err(), "{bad}");
        }
        let mut ms = vec![Matcher::new(MatchOp::Regex, SHARD_LABEL, "1_of_2").unwrap()];
        assert!(Shard::take(&mut ms).is_err());
        let mut none = vec![Matcher::new(MatchOp::Equal, "a", "b").unwrap()];
        assert_eq!(Shard::take(&mut none).unwrap(), None);
    }
}
