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
    pub fn rebuild(
        range: VniRange,
        existing: impl IntoIterator<Item = u32>,
    ) -> Rebuilt<Self, u32> {
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
