//! A small map in key order that remembers where it found the last key:
//! the windows' sets by (lane, window start) and watermarks by lane.
//!
//! Why not a `BTreeMap`: every line looks up its set and its lane's
//! watermark, and lines come by the thousand per set, so the last key found
//! is nearly always the next one asked for. The B-tree's searches (tuple
//! compares down its nodes) were ~8 % of the windows' cost a line in a
//! profile of the agent under load. The maps hold tens of entries (lanes ×
//! windows open until `max_lateness`), so an insert or removal moving the
//! vector's tail costs less than the searches it saves.
//!
//! Invariant: `entries` strictly ascending by key (each key once); `hint`
//! is any index (checked before use).

#[derive(Debug)]
pub(super) struct Sorted<K, V> {
    entries: Vec<(K, V)>,
    hint: usize,
}

impl<K, V> Default for Sorted<K, V> {
    fn default() -> Self {
        Sorted {
            entries: Vec::new(),
            hint: 0,
        }
    }
}

impl<K: Ord + Copy, V> Sorted<K, V> {
    /// Where `key` is (`Ok`), or would go (`Err`): the hint first.
    #[inline]
    fn position(&self, key: &K) -> Result<usize, usize> {
        if let Some((k, _)) = self.entries.get(self.hint)
            && k == key
        {
            return Ok(self.hint);
        }
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub(super) fn get(&self, key: &K) -> Option<&V> {
        let i = self.position(key).ok()?;
        self.entries.get(i).map(|(_, v)| v)
    }

    /// The value of `key`, made by `make` when there is none.
    #[inline]
    pub(super) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.position(&key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key, make()));
                i
            }
        };
        self.hint = i;
        &mut self.entries[i].1
    }

    /// Sets `key`'s value; the one it had, if any.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub(super) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.position(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Keeps the entries `keep` says to, in key order.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    #[cfg(test)]
    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_tests::{rng, seeds};
    use std::collections::BTreeMap;

    /// Thousands of random sequences of every operation against a
    /// `BTreeMap`: the same answers, the same entries in the same order.
    #[test]
    fn every_operation_answers_as_a_btree_map_would() {
        for seed in 1..=seeds(2_000) {
            let mut next = rng(seed);
            let mut ours: Sorted<(u8, i64), u64> = Sorted::default();
            let mut model: BTreeMap<(u8, i64), u64> = BTreeMap::new();
            let span = 1 + next() % 20;
            for step in 0..200 {
                let key = ((next() % 3) as u8, (next() % span) as i64 - 5);
                let v = next();
                match next() % 6 {
                    0 => assert_eq!(ours.insert(key, v), model.insert(key, v)),
                    1 => assert_eq!(ours.remove(&key), model.remove(&key)),
                    2 => assert_eq!(ours.get(&key), model.get(&key)),
                    3 => {
                        let a = *ours.get_or_insert_with(key, || v);
                        let b = *model.entry(key).or_insert(v);
                        assert_eq!(a, b);
                        *ours.get_or_insert_with(key, || 0) += 1;
                        *model.entry(key).or_insert(0) += 1;
                    }
                    4 => {
                        let cut = next() % 4;
                        ours.retain(|k, v| (*v ^ k.1 as u64) % 4 != cut);
                        model.retain(|k, v| (*v ^ k.1 as u64) % 4 != cut);
                    }
                    _ => {
                        for (_, v) in ours.iter_mut() {
                            *v = v.wrapping_add(3);
                        }
                        for v in model.values_mut() {
                            *v = v.wrapping_add(3);
                        }
                    }
                }
                let a: Vec<_> = ours.iter().map(|(k, v)| (*k, *v)).collect();
                let b: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(a, b, "seed {seed} step {step}");
                assert!(ours.keys().copied().eq(model.keys().copied()));
            }
        }
    }
}
