//! String interning: every label name and value is stored once per tenant head and series
//! refer to it by a `u32`. This is most of why a series costs well under 1 KB.
//!
//! Each string counts the label pairs that use it ([`Symbols::intern`] adds one,
//! [`Symbols::release`] takes one away); a string no series uses any more is freed and its id
//! reused, so series churn (a label value per deployment, per pod, per job run) does not grow
//! the head forever.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Interned strings of one head.
#[derive(Default)]
pub struct Symbols {
    strings: Vec<Box<str>>,
    /// Uses of each id; 0 for a freed id (its string is empty and its id on `free`).
    refs: Vec<u32>,
    free: Vec<u32>,
    table: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    bytes: usize,
}

impl Symbols {
    fn hash(&self, s: &[u8]) -> u64 {
        self.hasher.hash_one(s)
    }

    /// The id of `s`, if interned.
    pub fn get(&self, s: &[u8]) -> Option<u32> {
        let h = self.hash(s);
        self.table
            .find(h, |&id| self.strings[id as usize].as_bytes() == s)
            .copied()
    }

    /// Interns `s` (valid UTF-8, checked by validation) for one more use.
    pub fn intern(&mut self, s: &str) -> u32 {
        let h = self.hash(s.as_bytes());
        if let Some(&id) = self.table.find(h, |&id| &*self.strings[id as usize] == s) {
            self.refs[id as usize] += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = s.into();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                self.strings.push(s.into());
                self.refs.push(1);
                (self.strings.len() - 1) as u32
            }
        };
        self.bytes += s.len();
        let (strings, hasher) = (&self.strings, &self.hasher);
        self.table.insert_unique(h, id, |&id| {
            hasher.hash_one(strings[id as usize].as_bytes())
        });
        id
    }

    /// Gives back one use of `id`; the string is freed when none is left.
    pub fn release(&mut self, id: u32) {
        let Some(r) = self.refs.get_mut(id as usize).filter(|r| **r > 0) else {
            debug_assert!(false, "release of unused symbol {id}");
            return;
        };
        *r -= 1;
        if *r > 0 {
            return;
        }
        let h = self.hash(self.strings[id as usize].as_bytes());
        if let Ok(e) = self.table.find_entry(h, |&i| i == id) {
            e.remove();
        }
        self.bytes -= self.strings[id as usize].len();
        self.strings[id as usize] = Box::default();
        self.free.push(id);
    }

    /// The string of an id from [`Symbols::intern`].
    #[inline]
    pub fn resolve(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }

    /// Strings held (freed ids not counted).
    pub fn len(&self) -> usize {
        self.strings.len() - self.free.len()
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.bytes
            + self.strings.capacity() * 16
            + self.refs.capacity() * 4
            + self.free.capacity() * 4
            + self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_freed_with_their_last_use_and_ids_reused() {
        let mut s = Symbols::default();
        let a = s.intern("job");
        let b = s.intern("pod-1");
        assert_eq!(s.intern("job"), a);
        assert_eq!(s.len(), 2);
        s.release(b);
        assert_eq!(s.get(b"pod-1"), None);
        assert_eq!(s.len(), 1);
        // The freed id comes back for the next new string; "job" still has one use.
        let c = s.intern("pod-2");
        assert_eq!(c, b);
        assert_eq!(s.resolve(c), "pod-2");
        s.release(a);
        assert_eq!(s.get(b"job"), Some(a));
        s.release(a);
        assert_eq!(s.get(b"job"), None);
        assert_eq!(s.len(), 1);
        // Churn: many rounds of distinct strings leave the table no bigger than after the
        // second (the first one's releases also size the free list).
        let mut size = 0;
        for round in 0..5 {
            let ids: Vec<u32> = (0..1000)
                .map(|i| s.intern(&format!("r{round}-{i}")))
                .collect();
            if round == 1 {
                size = s.heap_size();
            }
            // (The hash table's capacity may move by a slot or two with its tombstones.)
            if round > 1 {
                assert!(
                    s.heap_size() <= size + size / 100,
                    "{} > {size}",
                    s.heap_size()
                );
            }
            for id in ids {
                s.release(id);
            }
        }
        assert_eq!(s.len(), 1);
    }
}
