//! An interval set: the sparse representation of a set of offsets.
//!
//! Taken offsets are stored as maximal runs `first..=last` in a B-tree keyed
//! by `first`, so memory grows with the number of separate runs (at most the
//! number of taken offsets), never with the size of the range. That is what
//! lets an IPv6 /64 pool exist at all. Every operation is `O(log runs)`.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A set of `u128` offsets kept as maximal runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunSet {
    /// first → last (inclusive); runs never touch or overlap.
    runs: BTreeMap<u128, u128>,
    count: u128,
}

impl RunSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Number of offsets in the set.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u128 {
        self.count
    }

    /// The run containing `pos`, if any.
    pub(crate) fn run_containing(&self, pos: u128) -> Option<(u128, u128)> {
        let (&first, &last) = self.runs.range(..=pos).next_back()?;
        (pos <= last).then_some((first, last))
    }

    /// Whether `pos` is in the set.
    pub(crate) fn contains(&self, pos: u128) -> bool {
        self.run_containing(pos).is_some()
    }

    /// Adds `first..=last`; returns how many offsets were new.
    pub(crate) fn insert_range(&mut self, first: u128, last: u128) -> u128 {
        debug_assert!(first <= last);
        let mut new_first = first;
        let mut new_last = last;
        let mut already = 0u128;
        // A run starting at or before `first` merges in if it overlaps or touches.
        if let Some((&f, &l)) = self.runs.range(..=first).next_back() {
            if l >= first {
                already += l.min(last) - first + 1;
                new_first = f;
                new_last = new_last.max(l);
                self.runs.remove(&f);
            } else if l + 1 == first {
                new_first = f;
                self.runs.remove(&f);
            }
        }
        // Runs starting inside `first..=last + 1` merge in too.
        let upper = last.saturating_add(1);
        while let Some((&f, &l)) = self
            .runs
            .range((Bound::Included(first), Bound::Included(upper)))
            .next()
        {
            if f <= last {
                already += l.min(last) - f + 1;
            }
            new_last = new_last.max(l);
            self.runs.remove(&f);
        }
        self.runs.insert(new_first, new_last);
        let added = last - first + 1 - already;
        self.count += added;
        added
    }

    /// Adds one offset; false if it was present.
    pub(crate) fn insert(&mut self, pos: u128) -> bool {
        self.insert_range(pos, pos) == 1
    }

    /// Removes one offset; false if it was absent.
    pub(crate) fn remove(&mut self, pos: u128) -> bool {
        let Some((first, last)) = self.run_containing(pos) else {
            return false;
        };
        self.runs.remove(&first);
        if first < pos {
            self.runs.insert(first, pos - 1);
        }
        if pos < last {
            self.runs.insert(pos + 1, last);
        }
        self.count -= 1;
        true
    }

    /// The lowest offset `>= from` and `< len` that is not in the set.
    pub(crate) fn first_absent_from(&self, from: u128, len: u128) -> Option<u128> {
        if from >= len {
            return None;
        }
        match self.run_containing(from) {
            // Runs are maximal, so the offset after one is absent.
            Some((_, last)) => last.checked_add(1).filter(|&p| p < len),
            None => Some(from),
        }
    }

    /// Iterates the runs in ascending order.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.runs.iter().map(|(&f, &l)| (f, l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn expand(set: &RunSet) -> BTreeSet<u128> {
        set.runs().flat_map(|(f, l)| f..=l).collect()
    }

    #[test]
    fn insert_merges_neighbours_and_remove_splits() {
        let mut s = RunSet::new();
        assert!(s.insert(5));
        assert!(s.insert(7));
        assert!(s.insert(6));
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(5, 7)]);
        assert!(!s.insert(6));
        assert!(s.remove(6));
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(5, 5), (7, 7)]);
        assert_eq!(s.first_absent_from(5, 100), Some(6));
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn extreme_offsets_do_not_overflow() {
        let mut s = RunSet::new();
        assert_eq!(s.insert_range(u128::MAX - 1, u128::MAX), 2);
        assert!(s.insert(u128::MAX - 2));
        assert_eq!(
            s.runs().collect::<Vec<_>>(),
            vec![(u128::MAX - 2, u128::MAX)]
        );
        assert_eq!(s.first_absent_from(u128::MAX - 1, u128::MAX), None);
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(
            ops in proptest::collection::vec((0u8..3, 0u128..200, 0u128..8), 0..200),
            probes in proptest::collection::vec(0u128..210, 1..20),
        ) {
            let mut s = RunSet::new();
            let mut model = BTreeSet::new();
            for (op, pos, width) in ops {
                match op {
                    0 => prop_assert_eq!(s.insert(pos), model.insert(pos)),
                    1 => prop_assert_eq!(s.remove(pos), model.remove(&pos)),
                    _ => {
                        let new = (pos..=pos + width).filter(|p| model.insert(*p)).count();
                        prop_assert_eq!(s.insert_range(pos, pos + width), new as u128);
                    }
                }
                prop_assert_eq!(s.count(), model.len() as u128);
            }
            prop_assert_eq!(expand(&s), model.clone());
            // Runs are maximal: no two touch.
            let runs: Vec<_> = s.runs().collect();
            for pair in runs.windows(2) {
                prop_assert!(pair[0].1 + 1 < pair[1].0);
            }
            for from in probes {
                let naive = (from..205).find(|p| !model.contains(p));
                prop_assert_eq!(s.first_absent_from(from, 205), naive);
            }
        }
    }
}
