//! Which ruler evaluates a rule group: rendezvous (highest random weight) hashing of the
//! group over the live rulers the gossip ring lists. Every ruler computes the same owner from
//! the same membership, a group moves only when its owner joins or leaves, and each group has
//! exactly one owner for a given membership.

use xxhash_rust::xxh3::xxh3_64;

/// The member that owns `key` among `members` (ids); `None` when there are none.
pub fn owner<'a>(members: &'a [String], key: &str) -> Option<&'a str> {
    members
        .iter()
        .map(|m| {
            let mut buf = Vec::with_capacity(m.len() + key.len() + 1);
            buf.extend_from_slice(m.as_bytes());
            buf.push(0);
            buf.extend_from_slice(key.as_bytes());
            (xxh3_64(&buf), m)
        })
        .max()
        .map(|(_, m)| m.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_spread_and_move_only_with_their_owner() {
        let three: Vec<String> = ["r1", "r2", "r3"].map(String::from).to_vec();
        let two: Vec<String> = ["r1", "r3"].map(String::from).to_vec();
        let mut counts = std::collections::HashMap::new();
        for i in 0..3000 {
            let key = format!("t\0ns\0g{i}");
            let o3 = owner(&three, &key).unwrap();
            *counts.entry(o3).or_insert(0) += 1;
            let o2 = owner(&two, &key).unwrap();
            if o3 != "r2" {
                assert_eq!(o2, o3, "a group not on the leaving ruler stays where it is");
            }
        }
        for (m, n) in counts {
            assert!((800..1200).contains(&n), "{m} owns {n} of 3000");
        }
        assert_eq!(owner(&[], "k"), None);
    }
}
