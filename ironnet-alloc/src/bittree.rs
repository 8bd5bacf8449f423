//! A hierarchical bitmap: the dense representation of a set of offsets.
//!
//! Level 0 holds one bit per position (1 = taken). Every higher level holds
//! one bit per word of the level below, set when that word is full. Finding a
//! free position from any starting point therefore walks at most two words
//! per level (up, then down), which keeps allocation cost flat from an empty
//! to an almost full pool. Padding bits past the end are set, so they are
//! never handed out.
//!
//! Storage is `len / 64` words plus about 1.6 % for the summary levels. The
//! words are allocated zeroed, so on Linux a large, sparsely used bitmap only
//! occupies the pages that were touched.

/// A set of positions `0..len` with fast "first free position from here".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BitTree {
    len: u64,
    taken: u64,
    /// `levels[0]` are the leaves; the last level has exactly one word.
    levels: Vec<Vec<u64>>,
}

const FULL: u64 = u64::MAX;

impl BitTree {
    /// An empty set over `0..len`.
    pub(crate) fn new(len: u64) -> Self {
        let mut levels = Vec::new();
        let mut bits = len;
        loop {
            let words = usize::try_from(bits.div_ceil(64).max(1)).unwrap_or(usize::MAX);
            let mut level = vec![0u64; words];
            let used = bits % 64;
            if bits == 0 {
                level[0] = FULL;
            } else if used != 0 {
                level[words - 1] = FULL << used;
            }
            levels.push(level);
            if words == 1 {
                break;
            }
            bits = words as u64;
        }
        BitTree {
            len,
            taken: 0,
            levels,
        }
    }

    /// Number of taken positions.
    #[cfg(test)]
    pub(crate) fn taken(&self) -> u64 {
        self.taken
    }

    /// Whether `pos` is taken; positions past the end count as taken.
    pub(crate) fn is_taken(&self, pos: u64) -> bool {
        if pos >= self.len {
            return true;
        }
        let word = self.levels[0][(pos >> 6) as usize];
        word & (1 << (pos & 63)) != 0
    }

    /// Marks `pos` taken; false if it was taken already or is out of range.
    pub(crate) fn take(&mut self, pos: u64) -> bool {
        if self.is_taken(pos) {
            return false;
        }
        let mut idx = pos;
        for level in &mut self.levels {
            let word = &mut level[(idx >> 6) as usize];
            *word |= 1 << (idx & 63);
            if *word != FULL {
                break;
            }
            idx >>= 6;
        }
        self.taken += 1;
        true
    }

    /// Marks every position of `first..=last` taken (a whole word at a
    /// time); returns how many were newly taken. `last` must be `< len`.
    pub(crate) fn take_range(&mut self, first: u64, last: u64) -> u64 {
        debug_assert!(first <= last && last < self.len);
        let mut added = 0;
        for w in first >> 6..=last >> 6 {
            let lo = if w == first >> 6 { first & 63 } else { 0 };
            let hi = if w == last >> 6 { last & 63 } else { 63 };
            let mask = (FULL >> (63 - hi)) & (FULL << lo);
            let word = &mut self.levels[0][w as usize];
            added += u64::from((mask & !*word).count_ones());
            *word |= mask;
            // Propagate a newly full word up the summary levels.
            let mut idx = w;
            let mut level = 0;
            while self.levels[level][idx as usize] == FULL && level + 1 < self.levels.len() {
                level += 1;
                let parent = &mut self.levels[level][(idx >> 6) as usize];
                *parent |= 1 << (idx & 63);
                idx >>= 6;
            }
        }
        self.taken += added;
        added
    }

    /// Marks `pos` free; false if it was free already or is out of range.
    pub(crate) fn free(&mut self, pos: u64) -> bool {
        if pos >= self.len || !self.is_taken(pos) {
            return false;
        }
        let mut idx = pos;
        for level in &mut self.levels {
            let word = &mut level[(idx >> 6) as usize];
            let was_full = *word == FULL;
            *word &= !(1 << (idx & 63));
            if !was_full {
                break;
            }
            idx >>= 6;
        }
        self.taken -= 1;
        true
    }

    /// The lowest free position `>= from`, if any.
    pub(crate) fn first_free_from(&self, from: u64) -> Option<u64> {
        if from >= self.len {
            return None;
        }
        // Climb until a word has a free bit at or after the cursor.
        let mut level = 0;
        let mut idx = from;
        loop {
            let words = self.levels.get(level)?;
            let w = (idx >> 6) as usize;
            let word = *words.get(w)?;
            let free = !word & (FULL << (idx & 63));
            if free != 0 {
                idx = ((w as u64) << 6) | u64::from(free.trailing_zeros());
                break;
            }
            idx = w as u64 + 1;
            level += 1;
        }
        // Descend: a clear summary bit guarantees a free bit below it.
        while level > 0 {
            level -= 1;
            let word = self.levels[level][idx as usize];
            idx = (idx << 6) | u64::from((!word).trailing_zeros());
        }
        Some(idx)
    }

    /// Calls `f(first, last)` for every maximal run of taken positions.
    pub(crate) fn for_each_run(&self, mut f: impl FnMut(u64, u64)) {
        let mut run_start: Option<u64> = None;
        for (w, &word) in self.levels[0].iter().enumerate() {
            let base = (w as u64) << 6;
            if run_start.is_none() && word == 0 {
                continue;
            }
            if run_start.is_some() && word == FULL {
                continue;
            }
            for bit in 0..64u64 {
                let pos = base + bit;
                let taken = pos < self.len && word & (1 << bit) != 0;
                match (taken, run_start) {
                    (true, None) => run_start = Some(pos),
                    (false, Some(start)) => {
                        f(start, pos - 1);
                        run_start = None;
                    }
                    _ => {}
                }
            }
        }
        if let Some(start) = run_start {
            f(start, self.len - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn empty_tree_has_nothing_free() {
        let t = BitTree::new(0);
        assert_eq!(t.first_free_from(0), None);
    }

    #[test]
    fn fills_exactly_len_positions_across_levels() {
        for len in [1u64, 63, 64, 65, 4095, 4096, 4097, 262_145] {
            let mut t = BitTree::new(len);
            for expect in 0..len {
                let got = t.first_free_from(0).expect("free position");
                assert_eq!(got, expect);
                assert!(t.take(got));
            }
            assert_eq!(t.first_free_from(0), None, "len {len}");
            assert_eq!(t.taken(), len);
            assert!(t.free(len / 2));
            assert_eq!(t.first_free_from(0), Some(len / 2));
        }
    }

    proptest! {
        #[test]
        fn first_free_matches_naive_scan(
            len in 1u64..20_000,
            ops in proptest::collection::vec((any::<bool>(), any::<u64>()), 0..400),
            probes in proptest::collection::vec(any::<u64>(), 1..20),
        ) {
            let mut t = BitTree::new(len);
            let mut model = BTreeSet::new();
            for (take, raw) in ops {
                let pos = raw % len;
                if take {
                    prop_assert_eq!(t.take(pos), model.insert(pos));
                } else {
                    prop_assert_eq!(t.free(pos), model.remove(&pos));
                }
            }
            prop_assert_eq!(t.taken(), model.len() as u64);
            for raw in probes {
                let from = raw % (len + 2);
                let naive = (from..len).find(|p| !model.contains(p));
                prop_assert_eq!(t.first_free_from(from), naive);
            }
            let mut runs = Vec::new();
            t.for_each_run(|a, b| runs.extend(a..=b));
            prop_assert_eq!(runs, model.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn take_range_equals_taking_one_by_one(
            len in 1u64..5000,
            ranges in proptest::collection::vec((any::<u64>(), 0u64..700), 0..8),
            singles in proptest::collection::vec(any::<u64>(), 0..50),
        ) {
            let mut by_range = BitTree::new(len);
            let mut by_one = BitTree::new(len);
            for s in singles {
                by_range.take(s % len);
                by_one.take(s % len);
            }
            for (start, width) in ranges {
                let first = start % len;
                let last = (first + width).min(len - 1);
                let added = (first..=last).filter(|&p| by_one.take(p)).count() as u64;
                prop_assert_eq!(by_range.take_range(first, last), added);
            }
            prop_assert_eq!(&by_range, &by_one);
        }
    }
}
