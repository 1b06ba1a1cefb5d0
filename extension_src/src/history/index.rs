//! The store's index: request id -> ring slot of its latest record, in 8 bytes a bucket.
//!
//! Open addressing with linear probing, at most half full, and deletion by backward shift, so a
//! full store's churn (every append evicts one id and adds another) leaves no tombstones: the
//! table never needs to grow or tidy once the ring has its final size. A bucket holds the slot
//! (plus one; 0 is empty) and the low 32 bits of the id's keyed hash, so a probe compares the
//! record's id only when the hashes agree. The ids themselves live in the records; the caller
//! passes a way to read them.

/// One bucket: the record's ring slot plus one (0: empty) and 32 bits of its id's hash.
#[derive(Clone, Copy, Default)]
struct Bucket {
    slot: u32,
    hash: u32,
}

pub(super) struct Index {
    buckets: Vec<Bucket>,
    len: usize,
}

impl Index {
    /// An index for a ring of `slots` slots (at most half its buckets will ever be used).
    pub(super) fn for_slots(slots: usize) -> Self {
        let buckets = (2 * slots.max(1)).next_power_of_two();
        Self {
            buckets: vec![Bucket::default(); buckets],
            len: 0,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes the index holds.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The slot whose record `is_key(slot)` says is the key, among the entries with this hash.
    pub(super) fn find(&self, hash: u64, is_key: impl Fn(usize) -> bool) -> Option<usize> {
        self.position(hash, is_key).map(|at| self.buckets[at].slot as usize - 1)
    }

    fn position(&self, hash: u64, is_key: impl Fn(usize) -> bool) -> Option<usize> {
        let short = hash as u32;
        let mut at = (hash as usize) & self.mask();
        loop {
            let bucket = self.buckets[at];
            if bucket.slot == 0 {
                return None;
            }
            if bucket.hash == short && is_key(bucket.slot as usize - 1) {
                return Some(at);
            }
            at = (at + 1) & self.mask();
        }
    }

    /// Points the key at `slot`: its entry when it has one (a retry's newer record), a new entry
    /// otherwise. The caller keeps the table at most half full (`for_slots`).
    pub(super) fn insert(&mut self, hash: u64, slot: usize, is_key: impl Fn(usize) -> bool) {
        let entry = Bucket {
            slot: u32::try_from(slot + 1).unwrap_or(u32::MAX),
            hash: hash as u32,
        };
        if let Some(at) = self.position(hash, is_key) {
            self.buckets[at] = entry;
            return;
        }
        let mut at = (hash as usize) & self.mask();
        while self.buckets[at].slot != 0 {
            at = (at + 1) & self.mask();
        }
        self.buckets[at] = entry;
        self.len += 1;
    }

    /// Removes the key's entry if it points at `slot` (an older record of a retried id does not
    /// own the entry), shifting later entries of the probe run back so no gap breaks a probe.
    pub(super) fn remove(&mut self, hash: u64, slot: usize, is_key: impl Fn(usize) -> bool) {
        let Some(mut hole) = self.position(hash, is_key) else { return };
        if self.buckets[hole].slot as usize != slot + 1 {
            return;
        }
        let mask = self.mask();
        let mut next = (hole + 1) & mask;
        while self.buckets[next].slot != 0 {
            let home = self.buckets[next].hash as usize & mask;
            // The entry may move back into the hole unless its home lies cyclically in (hole, next].
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                self.buckets[hole] = self.buckets[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.buckets[hole] = Bucket::default();
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A deterministic generator (xorshift), so a failure replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn agrees_with_a_map_under_ring_churn_with_retries_and_colliding_hashes() {
        // A ring of 256 slots; keys are small numbers so retries (the same key again) are common;
        // hashes are deliberately poor (few distinct values) so probe runs are long and shared.
        const SLOTS: usize = 256;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let hash_of = |key: u64| (key % 97).wrapping_mul(0x0001_0000_0001);
        let mut ring: Vec<Option<u64>> = vec![None; SLOTS];
        let mut index = Index::for_slots(SLOTS);
        let mut model: HashMap<u64, usize> = HashMap::new();
        for step in 0..200_000 {
            let slot = step % SLOTS;
            if let Some(old) = ring[slot] {
                index.remove(hash_of(old), slot, |s| ring[s] == Some(old));
                if model.get(&old) == Some(&slot) {
                    model.remove(&old);
                }
            }
            let key = rng.next() % 600;
            ring[slot] = Some(key);
            index.insert(hash_of(key), slot, |s| ring[s] == Some(key));
            model.insert(key, slot);
            assert_eq!(index.len(), model.len(), "step {step}");
            if step % 97 == 0 {
                for probe in 0..600 {
                    assert_eq!(
                        index.find(hash_of(probe), |s| ring[s] == Some(probe)),
                        model.get(&probe).copied(),
                        "step {step}, key {probe}"
                    );
                }
            }
        }
    }

    #[test]
    fn never_more_than_half_full_and_sized_once() {
        let index = Index::for_slots(10_000);
        assert_eq!(index.buckets.len(), 32_768);
        assert_eq!(index.heap_bytes(), 32_768 * 8);
    }
}
