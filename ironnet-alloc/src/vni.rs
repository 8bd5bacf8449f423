//! Network IDs: the 24-bit VNIs that tell virtual networks apart.
//!
//! IronCore allocates them from `--min-vni` (default 200) to `--max-vni`
//! (default 2^24 - 1), both inclusive; the IDs below 200 are left to the
//! infrastructure (the public network uses VNI 100).

use crate::error::{AllocError, ConfigError, Conflict, Rebuilt, Resource, Value};
use crate::pool::{PoolMiss, RangePool};

/// The largest VNI: VNIs are 24 bits wide.
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// An inclusive, validated range of VNIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VniRange {
    min: u32,
    max: u32,
}

impl VniRange {
    /// IronCore's default range, `200..=16777215`.
    pub const IRONCORE_DEFAULT: VniRange = VniRange {
        min: 200,
        max: MAX_VNI,
    };

    /// The range `min..=max`; needs `min < max <= 2^24 - 1` as IronCore does.
    pub fn new(min: u32, max: u32) -> Result<Self, AllocError> {
        if min >= max || max > MAX_VNI {
            return Err(ConfigError::InvalidVniRange { min, max }.into());
        }
        Ok(VniRange { min, max })
    }

    /// Lowest VNI of the range.
    pub fn min(&self) -> u32 {
        self.min
    }

    /// Highest VNI of the range.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Whether `vni` lies in the range.
    pub fn contains(&self, vni: u32) -> bool {
        (self.min..=self.max).contains(&vni)
    }
}

impl Default for VniRange {
    fn default() -> Self {
        Self::IRONCORE_DEFAULT
    }
}

/// Hands out unique VNIs from a [`VniRange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VniAllocator {
    range: VniRange,
    pool: RangePool,
}

impl VniAllocator {
    /// An allocator with every VNI of `range` free.
    pub fn new(range: VniRange) -> Self {
        let len = u128::from(range.max - range.min) + 1;
        VniAllocator {
            range,
            pool: RangePool::new(&[(u128::from(range.min), len)]),
        }
    }

    /// An allocator holding `existing` VNIs; duplicates and VNIs outside the
    /// range are reported as conflicts.
    pub fn rebuild(range: VniRange, existing: impl IntoIterator<Item = u32>) -> Rebuilt<Self, u32> {
        let mut allocator = Self::new(range);
        let conflicts = existing
            .into_iter()
            .filter_map(|item| {
                let error = allocator.claim(item).err()?;
                Some(Conflict { item, error })
            })
            .collect();
        Rebuilt {
            allocator,
            conflicts,
        }
    }

    /// The range this allocator serves.
    pub fn range(&self) -> VniRange {
        self.range
    }

    /// VNIs allocated now.
    pub fn allocated_count(&self) -> u32 {
        // At most 2^24 values.
        self.pool.allocated() as u32
    }

    /// Whether `vni` is allocated.
    pub fn is_allocated(&self, vni: u32) -> bool {
        self.pool.is_allocated(u128::from(vni))
    }

    /// Allocates the lowest free VNI.
    pub fn allocate(&mut self) -> Result<u32, AllocError> {
        self.allocate_random(0)
    }

    /// Allocates the first free VNI at or after position `random % size` of
    /// the range, wrapping around (IronCore starts at a random VNI).
    pub fn allocate_random(&mut self, random: u128) -> Result<u32, AllocError> {
        self.pool
            .allocate_from_position(random)
            .map(|v| v as u32)
            .ok_or(AllocError::Exhausted(Resource::Vni))
    }

    fn miss(vni: u32, miss: PoolMiss) -> AllocError {
        miss.into_error(Resource::Vni, Value::Vni(vni))
    }

    /// Claims a specific VNI (a Network with an explicit `spec.id`).
    pub fn claim(&mut self, vni: u32) -> Result<(), AllocError> {
        self.pool
            .claim(u128::from(vni))
            .map_err(|m| Self::miss(vni, m))
    }

    /// Releases a VNI.
    pub fn release(&mut self, vni: u32) -> Result<(), AllocError> {
        self.pool
            .release(u128::from(vni))
            .map_err(|m| Self::miss(vni, m))
    }

    /// Every allocated VNI, ascending.
    pub fn allocations(&self) -> Vec<u32> {
        self.pool
            .allocations()
            .into_iter()
            .map(|v| v as u32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn range_is_validated_like_ironcore() {
        assert!(VniRange::new(200, MAX_VNI).is_ok());
        for (min, max) in [(5, 5), (6, 5), (0, MAX_VNI + 1)] {
            assert_eq!(
                VniRange::new(min, max),
                Err(ConfigError::InvalidVniRange { min, max }.into())
            );
        }
        assert_eq!(VniRange::default(), VniRange::IRONCORE_DEFAULT);
    }

    #[test]
    fn full_default_range_allocates_from_both_ends() {
        let mut vnis = VniAllocator::new(VniRange::IRONCORE_DEFAULT);
        assert_eq!(vnis.allocate().unwrap(), 200);
        vnis.claim(MAX_VNI).unwrap();
        assert_eq!(
            vnis.allocate_random(u128::from(MAX_VNI - 200)).unwrap(),
            201
        );
        assert!(matches!(
            vnis.claim(100),
            Err(AllocError::OutOfRange { .. })
        ));
        assert!(matches!(
            vnis.claim(200),
            Err(AllocError::AlreadyAllocated { .. })
        ));
        assert!(matches!(
            vnis.release(300),
            Err(AllocError::NotAllocated { .. })
        ));
        assert_eq!(vnis.allocations(), vec![200, 201, MAX_VNI]);
    }

    proptest! {
        #[test]
        fn small_range_yields_each_vni_once_then_exhausts(
            min in 0u32..1000,
            span in 1u32..200,
            seeds in proptest::collection::vec(any::<u128>(), 0..50),
        ) {
            let range = VniRange::new(min, min + span).unwrap();
            let mut vnis = VniAllocator::new(range);
            let mut seen = BTreeSet::new();
            for seed in seeds {
                if let Ok(v) = vnis.allocate_random(seed) {
                    prop_assert!(range.contains(v) && seen.insert(v));
                }
            }
            while let Ok(v) = vnis.allocate() {
                prop_assert!(range.contains(v) && seen.insert(v));
            }
            prop_assert_eq!(seen.len() as u32, span + 1);
            prop_assert_eq!(vnis.allocate(), Err(AllocError::Exhausted(Resource::Vni)));
            let released = min + span / 2;
            vnis.release(released).unwrap();
            prop_assert_eq!(vnis.allocate_random(0).unwrap(), released);
        }

        #[test]
        fn rebuild_equals_original(
            claims in proptest::collection::vec(190u32..400, 0..100),
        ) {
            let range = VniRange::new(200, 350).unwrap();
            let mut vnis = VniAllocator::new(range);
            let mut accepted = Vec::new();
            for &c in &claims {
                if vnis.claim(c).is_ok() {
                    accepted.push(c);
                }
            }
            let rebuilt = VniAllocator::rebuild(range, claims.iter().copied());
            prop_assert_eq!(rebuilt.conflicts.len(), claims.len() - accepted.len());
            prop_assert_eq!(&rebuilt.allocator, &vnis);
        }
    }
}
