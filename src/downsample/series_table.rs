//! The series of one window set, by series key: a vector in the order they
//! came, and a hash index of it.
//!
//! Why not a `HashMap<Box<[u8]>, Series>`: a series has a stable number
//! here (its place in the vector), so a batch's later lines of a series
//! find it by that number (`SeriesHint`, from the codec's line shapes)
//! without hashing and comparing its key again; and a set is emitted and
//! saved in the order its series came, the same in every process.
//!
//! Invariants: `index` holds each entry's number once, hashed by its key
//! (keys distinct); numbers are `0..entries.len()`. Only the newest entry is
//! ever removed (`pop_newest`: a series every field of whose first line was
//! refused), so no number changes while its entry lives.
//!
//! The index hashes with foldhash, seeded per process: the keys come from
//! HTTP clients, and crafted collisions cannot be aimed at a seed they do
//! not know.

use super::series::Series;
use hashbrown::HashTable;
use std::hash::BuildHasher;

pub(super) struct SeriesTable {
    entries: Vec<(Box<[u8]>, Series)>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Default for SeriesTable {
    fn default() -> Self {
        SeriesTable {
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl std::fmt::Debug for SeriesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl SeriesTable {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The number of the series `key`, if held.
    #[inline]
    pub(super) fn find(&self, key: &[u8]) -> Option<u32> {
        let entries = &self.entries;
        let eq = |&i: &u32| entries.get(i as usize).is_some_and(|(k, _)| **k == *key);
        self.index.find(self.hash(key), eq).copied()
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Series> {
        let i = self.find(key)?;
        self.entries.get(i as usize).map(|(_, s)| s)
    }

    #[cfg(test)]
    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// The key of series number `i`.
    #[inline]
    pub(super) fn key_of(&self, i: u32) -> Option<&[u8]> {
        self.entries.get(i as usize).map(|(k, _)| &**k)
    }

    /// Series number `i` with its key.
    #[inline]
    pub(super) fn at_mut(&mut self, i: u32) -> Option<(&[u8], &mut Series)> {
        let (k, s) = self.entries.get_mut(i as usize)?;
        Some((k, s))
    }

    /// Adds series `key` (not held: the caller asked `find`); its number.
    pub(super) fn push(&mut self, key: impl Into<Box<[u8]>>, series: Series) -> u32 {
        let key: Box<[u8]> = key.into();
        let i = self.entries.len() as u32;
        let hash = self.hash(&key);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            hasher.hash_one(entries.get(j as usize).map_or(&[][..], |(k, _)| k))
        });
        self.entries.push((key, series));
        i
    }

    /// Removes the newest series (numbered `len() - 1`).
    pub(super) fn pop_newest(&mut self) {
        let Some(i) = self.entries.len().checked_sub(1) else {
            return;
        };
        let hash = self.hash(&self.entries[i].0);
        if let Ok(e) = self.index.find_entry(hash, |&j: &u32| j as usize == i) {
            e.remove();
        }
        self.entries.pop();
    }

    /// Makes room for `more` series; `Err` when memory is short.
    pub(super) fn try_reserve(&mut self, more: usize) -> Result<(), ()> {
        self.entries.try_reserve(more).map_err(|_| ())?;
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .try_reserve(more, |&j| {
                hasher.hash_one(entries.get(j as usize).map_or(&[][..], |(k, _)| k))
            })
            .map_err(|_| ())
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// In the order the series came.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], &Series)> {
        self.entries.iter().map(|(k, s)| (&**k, s))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut Series)> {
        self.entries.iter_mut().map(|(k, s)| (&**k, s))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Series> {
        self.entries.iter().map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_tests::{rng, seeds};
    use std::collections::HashMap;

    /// Random pushes, pops of the newest and look-ups against a `HashMap`
    /// of key → number: every key found under its own number, none else.
    #[test]
    fn every_series_is_found_under_its_own_number_and_no_other() {
        for seed in 1..=seeds(500) {
            let mut next = rng(seed);
            let mut t = SeriesTable::default();
            let mut model: HashMap<Vec<u8>, u32> = HashMap::new();
            let mut order: Vec<Vec<u8>> = Vec::new();
            for step in 0..400 {
                let key = format!("m,s={}", next() % 300).into_bytes();
                match next() % 5 {
                    0 if !order.is_empty() => {
                        t.pop_newest();
                        let k = order.pop().expect("not empty");
                        model.remove(&k);
                    }
                    _ if !model.contains_key(&key) => {
                        let i = t.push(&key[..], Series::new());
                        assert_eq!(i as usize, order.len(), "seed {seed} step {step}");
                        model.insert(key.clone(), i);
                        order.push(key.clone());
                    }
                    _ => {}
                }
                assert_eq!(
                    t.find(&key),
                    model.get(&key).copied(),
                    "seed {seed} step {step}"
                );
                assert_eq!(t.len(), order.len());
                if step % 50 == 49 {
                    for (i, (k, _)) in t.iter().enumerate() {
                        assert_eq!(k, &order[i][..]);
                        assert_eq!(t.find(k), Some(i as u32));
                        assert_eq!(t.key_of(i as u32), Some(k));
                    }
                }
            }
        }
    }
}
