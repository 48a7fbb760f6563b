//! String interning: every label name and value is stored once per tenant head and series
//! refer to it by a `u32`. This is most of why a series costs well under 1 KB.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Interned strings of one head.
#[derive(Default)]
pub struct Symbols {
    strings: Vec<Box<str>>,
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

    /// Interns `s` (valid UTF-8, checked by validation).
    pub fn intern(&mut self, s: &str) -> u32 {
        let h = self.hash(s.as_bytes());
        if let Some(&id) = self.table.find(h, |&id| &*self.strings[id as usize] == s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.into());
        self.bytes += s.len();
        let (strings, hasher) = (&self.strings, &self.hasher);
        self.table.insert_unique(h, id, |&id| {
            hasher.hash_one(strings[id as usize].as_bytes())
        });
        id
    }

    /// The string of an id from [`Symbols::intern`].
    #[inline]
    pub fn resolve(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.bytes + self.strings.capacity() * 16 + self.table.capacity() * 5
    }
}
