//! The Internet checksum (RFC 1071): full computation, pseudo-headers, and
//! the incremental update of RFC 1624.
//!
//! Sums are carried as unfolded `u64` accumulators so pieces (pseudo-header,
//! header, payload) can be added before one final [`fold`]. A checksum
//! field is the complement of the folded sum with the field itself taken as
//! zero; a header verifies when the folded sum over everything, field
//! included, is `0xffff`.
//!
//! Incremental update (RFC 1624, equation 3): when 16-bit words `m` become
//! `m'`, the new checksum is `HC' = ~(~HC + ~m + m')`. Unlike equation 2 of
//! RFC 1141 this never produces a wrong `0x0000`/`0xffff` representation
//! for a non-zero sum.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to a running sum, as big-endian 16-bit words; an odd final
/// byte is padded with a zero byte.
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Add the two 32-bit halves; with u64 headroom this cannot overflow
        // for any buffer below 2^32 words.
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits with end-around carry.
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for a running sum: `!fold(acc)`.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The full checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Sum of the IPv4 pseudo-header (RFC 793 / 768).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u64 {
    sum(&src.octets()) + sum(&dst.octets()) + u64::from(protocol) + u64::from(length)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u64 {
    sum(&src.octets())
        + sum(&dst.octets())
        + u64::from(length >> 16)
        + u64::from(length & 0xffff)
        + u64::from(next_header)
}

/// RFC 1624 update of checksum `hc` after one 16-bit word changed from
/// `old` to `new`.
pub fn update_u16(hc: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!hc) + u64::from(!old) + u64::from(new))
}

/// RFC 1624 update of checksum `hc` after a run of bytes changed from `old`
/// to `new` (same even length, word aligned in the checksummed data: an
/// address or a port).
pub fn update_bytes(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    apply_delta(hc, delta(old, new))
}

/// The ones'-complement difference between `old` and `new` (same even
/// length), to apply to several checksums with [`apply_delta`].
#[inline]
pub fn delta(old: &[u8], new: &[u8]) -> u64 {
    let mut acc = 0u64;
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        acc += u64::from(!u16::from_be_bytes([o[0], o[1]]));
        acc += u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
    acc
}

/// Checksum `hc` updated by a [`delta`]: `~(~hc + delta)`.
#[inline]
pub fn apply_delta(hc: u16, delta: u64) -> u16 {
    !fold(u64::from(!hc) + delta)
}

/// Whether two checksum values are the same ones'-complement number
/// (`0x0000` and `0xffff` are both zero).
pub fn equivalent(a: u16, b: u16) -> bool {
    a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // The example of RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    proptest! {
        #[test]
        fn wide_sum_equals_word_by_word(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(checksum(&data), naive(&data));
        }

        #[test]
        fn incremental_equals_full(
            mut data in proptest::collection::vec(any::<u8>(), 8..200),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<[u8; 4]>()), 1..20),
        ) {
            if data.len() % 2 == 1 { data.pop(); }
            let mut hc = checksum(&data);
            for (at, new) in edits {
                let words = (data.len() - 4) / 2;
                let pos = at.index(words + 1) * 2;
                let old: [u8; 4] = data[pos..pos + 4].try_into().unwrap();
                data[pos..pos + 4].copy_from_slice(&new);
                hc = update_bytes(hc, &old, &new);
            }
            prop_assert!(equivalent(hc, checksum(&data)), "{:#x} vs {:#x}", hc, checksum(&data));
        }
    }
}
