//! The engine shared by the IP pools and the VNI allocator: a pool of
//! integer values made of disjoint segments, each stored densely (a
//! [`BitTree`]) or sparsely (a [`RunSet`]) depending on its size.

use crate::bittree::BitTree;
use crate::error::{AllocError, Resource, Value};
use crate::runset::RunSet;

/// Segments up to this many values use a bitmap (2 MiB for the largest);
/// bigger ones use runs, so memory follows what is allocated.
pub(crate) const DENSE_MAX: u128 = 1 << 24;

/// The taken offsets of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Space {
    Dense(BitTree),
    Sparse { taken: RunSet, len: u128 },
}

impl Space {
    fn new(len: u128) -> Self {
        match u64::try_from(len) {
            Ok(len64) if len <= DENSE_MAX => Space::Dense(BitTree::new(len64)),
            _ => Space::Sparse {
                taken: RunSet::new(),
                len,
            },
        }
    }

    fn is_taken(&self, off: u128) -> bool {
        match self {
            Space::Dense(bits) => u64::try_from(off).map_or(true, |o| bits.is_taken(o)),
            Space::Sparse { taken, .. } => taken.contains(off),
        }
    }

    fn take(&mut self, off: u128) -> bool {
        match self {
            Space::Dense(bits) => u64::try_from(off).is_ok_and(|o| bits.take(o)),
            Space::Sparse { taken, len } => off < *len && taken.insert(off),
        }
    }

    fn free(&mut self, off: u128) -> bool {
        match self {
            Space::Dense(bits) => u64::try_from(off).is_ok_and(|o| bits.free(o)),
            Space::Sparse { taken, .. } => taken.remove(off),
        }
    }

    fn first_free_from(&self, off: u128) -> Option<u128> {
        match self {
            Space::Dense(bits) => {
                let off = u64::try_from(off).ok()?;
                bits.first_free_from(off).map(u128::from)
            }
            Space::Sparse { taken, len } => taken.first_absent_from(off, *len),
        }
    }

    fn for_each_run(&self, mut f: impl FnMut(u128, u128)) {
        match self {
            Space::Dense(bits) => bits.for_each_run(|a, b| f(u128::from(a), u128::from(b))),
            Space::Sparse { taken, .. } => taken.runs().for_each(|(a, b)| f(a, b)),
        }
    }

    #[cfg(test)]
    fn is_dense(&self) -> bool {
        matches!(self, Space::Dense(_))
    }
}

/// One contiguous range of values `first .. first + len`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    first: u128,
    len: u128,
    /// Position of this segment's first value in the concatenation of all.
    start_pos: u128,
    space: Space,
    /// Offsets that are reserved; also marked taken in `space`.
    reserved: RunSet,
}

impl Segment {
    fn offset_of(&self, value: u128) -> Option<u128> {
        let off = value.checked_sub(self.first)?;
        (off < self.len).then_some(off)
    }
}

/// Why a value could not be claimed or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolMiss {
    OutOfRange,
    Reserved,
    Taken,
    NotTaken,
}

impl PoolMiss {
    /// The public error for this miss on `value`.
    pub(crate) fn into_error(self, resource: Resource, value: Value) -> AllocError {
        match self {
            PoolMiss::OutOfRange => AllocError::OutOfRange { resource, value },
            PoolMiss::Reserved => AllocError::Reserved { resource, value },
            PoolMiss::Taken => AllocError::AlreadyAllocated { resource, value },
            PoolMiss::NotTaken => AllocError::NotAllocated { resource, value },
        }
    }
}

/// A pool of `u128` values made of sorted, disjoint segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangePool {
    segments: Vec<Segment>,
    total: u128,
    reserved: u128,
    allocated: u128,
}

impl RangePool {
    /// A pool over `(first, len)` segments, which must be sorted by `first`,
    /// disjoint, non-empty, with a total length that fits in `u128`.
    pub(crate) fn new(ranges: &[(u128, u128)]) -> Self {
        let mut start_pos = 0u128;
        let segments = ranges
            .iter()
            .map(|&(first, len)| {
                let seg = Segment {
                    first,
                    len,
                    start_pos,
                    space: Space::new(len),
                    reserved: RunSet::new(),
                };
                start_pos += len;
                seg
            })
            .collect();
        RangePool {
            segments,
            total: start_pos,
            reserved: 0,
            allocated: 0,
        }
    }

    fn locate(&self, value: u128) -> Option<usize> {
        let idx = self.segments.partition_point(|s| s.first <= value);
        let idx = idx.checked_sub(1)?;
        self.segments[idx].offset_of(value).map(|_| idx)
    }

    /// Reserves `first..=last`; false if the range is not inside one segment.
    /// Only valid before anything is allocated.
    pub(crate) fn reserve(&mut self, first: u128, last: u128) -> bool {
        debug_assert_eq!(self.allocated, 0);
        let Some(idx) = self.locate(first) else {
            return false;
        };
        let seg = &mut self.segments[idx];
        let (Some(a), Some(b)) = (seg.offset_of(first), seg.offset_of(last)) else {
            return false;
        };
        let added = seg.reserved.insert_range(a, b);
        match &mut seg.space {
            Space::Dense(bits) => {
                // Dense segments are at most DENSE_MAX long, so offsets fit.
                bits.take_range(a as u64, b as u64);
            }
            Space::Sparse { taken, .. } => {
                taken.insert_range(a, b);
            }
        }
        self.reserved += added;
        true
    }

    /// Values that can be allocated in all (total minus reserved).
    pub(crate) fn capacity(&self) -> u128 {
        self.total - self.reserved
    }

    /// Values allocated now.
    pub(crate) fn allocated(&self) -> u128 {
        self.allocated
    }

    /// Whether `value` lies in one of the segments.
    pub(crate) fn contains(&self, value: u128) -> bool {
        self.locate(value).is_some()
    }

    /// Whether `value` is allocated (reserved values are not).
    pub(crate) fn is_allocated(&self, value: u128) -> bool {
        self.locate(value).is_some_and(|idx| {
            let seg = &self.segments[idx];
            let off = value - seg.first;
            seg.space.is_taken(off) && !seg.reserved.contains(off)
        })
    }

    /// Takes `value`.
    pub(crate) fn claim(&mut self, value: u128) -> Result<(), PoolMiss> {
        let idx = self.locate(value).ok_or(PoolMiss::OutOfRange)?;
        let seg = &mut self.segments[idx];
        let off = value - seg.first;
        if seg.reserved.contains(off) {
            return Err(PoolMiss::Reserved);
        }
        if !seg.space.take(off) {
            return Err(PoolMiss::Taken);
        }
        self.allocated += 1;
        Ok(())
    }

    /// Gives `value` back.
    pub(crate) fn release(&mut self, value: u128) -> Result<(), PoolMiss> {
        let idx = self.locate(value).ok_or(PoolMiss::OutOfRange)?;
        let seg = &mut self.segments[idx];
        let off = value - seg.first;
        if seg.reserved.contains(off) {
            return Err(PoolMiss::Reserved);
        }
        if !seg.space.free(off) {
            return Err(PoolMiss::NotTaken);
        }
        self.allocated -= 1;
        Ok(())
    }

    /// Takes the first free value at or after `pos` (a position in the
    /// concatenation of all segments, reduced modulo the total), wrapping
    /// around once.
    pub(crate) fn allocate_from_position(&mut self, pos: u128) -> Option<u128> {
        if self.total == 0 {
            return None;
        }
        // u128 division is slow; most callers pass an in-range position.
        let pos = if pos < self.total {
            pos
        } else {
            pos % self.total
        };
        let start = self.segments.partition_point(|s| s.start_pos <= pos) - 1;
        let n = self.segments.len();
        let first_off = pos - self.segments[start].start_pos;
        let found = (0..=n).find_map(|step| {
            let idx = (start + step) % n;
            let from = if step == 0 { first_off } else { 0 };
            self.segments[idx]
                .space
                .first_free_from(from)
                .map(|off| (idx, off))
        })?;
        let (idx, off) = found;
        let seg = &mut self.segments[idx];
        seg.space.take(off);
        self.allocated += 1;
        Some(seg.first + off)
    }

    /// Takes the first free value at or after `hint`, wrapping around once.
    pub(crate) fn allocate_near(&mut self, hint: u128) -> Option<u128> {
        let idx = self.segments.partition_point(|s| s.first <= hint);
        let pos = match idx.checked_sub(1).map(|i| &self.segments[i]) {
            Some(seg) if seg.offset_of(hint).is_some() => seg.start_pos + (hint - seg.first),
            _ => self.segments.get(idx).map_or(0, |s| s.start_pos),
        };
        self.allocate_from_position(pos)
    }

    /// Every allocated value, ascending.
    pub(crate) fn allocations(&self) -> Vec<u128> {
        let mut out = Vec::new();
        for seg in &self.segments {
            seg.space.for_each_run(|a, b| {
                let mut off = a;
                while off <= b {
                    match seg.reserved.run_containing(off) {
                        // Offsets are below the segment length, so no overflow.
                        Some((_, last)) => off = last + 1,
                        None => {
                            out.push(seg.first + off);
                            off += 1;
                        }
                    }
                }
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_segments_are_dense_and_huge_ones_sparse() {
        let pool = RangePool::new(&[(0, 1 << 16), (1 << 20, 1 << 64)]);
        assert!(pool.segments[0].space.is_dense());
        assert!(!pool.segments[1].space.is_dense());
    }

    #[test]
    fn allocation_walks_segments_and_wraps() {
        let mut pool = RangePool::new(&[(10, 2), (100, 2)]);
        assert_eq!(pool.allocate_near(101), Some(101));
        assert_eq!(pool.allocate_near(101), Some(10));
        assert_eq!(pool.allocate_near(50), Some(100));
        assert_eq!(pool.allocate_near(0), Some(11));
        assert_eq!(pool.allocate_near(0), None);
        assert_eq!(pool.allocations(), vec![10, 11, 100, 101]);
    }

    #[test]
    fn reserved_values_are_skipped_and_refused() {
        let mut pool = RangePool::new(&[(0, 4)]);
        assert!(pool.reserve(1, 2));
        assert_eq!(pool.capacity(), 2);
        assert_eq!(pool.claim(1), Err(PoolMiss::Reserved));
        assert_eq!(pool.release(2), Err(PoolMiss::Reserved));
        assert_eq!(pool.allocate_from_position(0), Some(0));
        assert_eq!(pool.allocate_from_position(0), Some(3));
        assert_eq!(pool.allocate_from_position(0), None);
        assert_eq!(pool.allocations(), vec![0, 3]);
    }
}
