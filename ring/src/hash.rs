//! Placement keys: the hash of a tenant and a series' label pairs (in their sorted order), or
//! of a tenant and another key (the HA tracker's cluster). The function is part of the
//! cluster's contract: every router must place a series on the same token, so it is written
//! out here (64-bit FNV-1a with separators, folded to 32 bits) and never taken from a library
//! whose output could change between versions.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline]
fn mix(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

#[inline]
fn fold(h: u64) -> u32 {
    // FNV's low bits are its weakest: fold the high half in, then finish with a multiply-shift
    // so that neighbouring label values spread over the whole ring.
    let h = h ^ (h >> 32);
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

/// The ring key of a series of `tenant` with `labels` (name, value) in their given order.
pub fn series_key<'a>(tenant: &str, labels: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> u32 {
    let mut h = mix(OFFSET, tenant.as_bytes());
    for (n, v) in labels {
        h = mix(h, &[0xff]);
        h = mix(h, n);
        h = mix(h, &[0xfe]);
        h = mix(h, v);
    }
    fold(h)
}

/// The ring key of `key` within `tenant` (e.g. an HA cluster name).
pub fn tenant_key(tenant: &str, key: &str) -> u32 {
    let h = mix(OFFSET, tenant.as_bytes());
    let h = mix(h, &[0xfd]);
    fold(mix(h, key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_separated() {
        let k = series_key("t", [(&b"a"[..], &b"b"[..])].into_iter());
        // Fixed: changing it would move every series of every cluster.
        assert_eq!(k, series_key("t", [(&b"a"[..], &b"b"[..])].into_iter()));
        assert_eq!(k, 0xacd3_4913, "placement hash changed: {k:#x}");
        assert_ne!(k, series_key("t", [(&b"ab"[..], &b""[..])].into_iter()));
        assert_ne!(k, series_key("u", [(&b"a"[..], &b"b"[..])].into_iter()));
        assert_ne!(tenant_key("t", "c1"), tenant_key("t", "c2"));
    }

    #[test]
    fn neighbouring_values_spread() {
        let mut buckets = [0u32; 16];
        for i in 0..16_000 {
            let v = format!("instance-{i}");
            let k = series_key("t", [(&b"instance"[..], v.as_bytes())].into_iter());
            buckets[(k >> 28) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
    }
}
