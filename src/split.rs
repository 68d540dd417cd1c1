//! Document → split assignment (docs/format.md §1.4).
//!
//! A document's split depends only on its key and the seed: SipHash-2-4 keyed
//! with `(seed, SPLIT_KEY)` over the key's bytes, mapped to `[0, 1)` with 53
//! bits, compared against the cumulative fractions of the splits sorted by
//! name. Integer keys hash their 8 little-endian bytes (as `i64`; unsigned ids
//! above `i64::MAX` hash their `u64` bytes, which are the same bits), string
//! keys their UTF-8 bytes. Documents without an id column use their ordinal
//! position in the source as an integer key. The result is the same on every
//! platform and thread count, and does not change when other documents are
//! added or removed.

use std::hash::Hasher;

use siphasher::sip::SipHasher24;

use crate::plan::SplitSpec;

/// Second half of the SipHash key (ASCII "seqwinSP").
pub const SPLIT_KEY: u64 = 0x7365_7177_696e_5350;

/// A document key: what the split hash reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKey<'a> {
    /// An integer id or an ordinal.
    Int(i64),
    /// A string id.
    Str(&'a str),
}

/// The point in `[0, 1)` a key hashes to under `seed`.
pub fn unit_interval(key: DocKey<'_>, seed: u64) -> f64 {
    let mut h = SipHasher24::new_with_keys(seed, SPLIT_KEY);
    match key {
        DocKey::Int(v) => h.write(&v.to_le_bytes()),
        DocKey::Str(s) => h.write(s.as_bytes()),
    }
    (h.finish() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl SplitSpec {
    /// Index (into `names`) of the split a document goes to.
    pub fn assign(&self, key: DocKey<'_>) -> usize {
        let u = unit_interval(key, self.seed);
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SplitSpec {
        SplitSpec {
            names: vec!["test".into(), "train".into(), "val".into()],
            cumulative: vec![0.1, 0.9, 1.0],
            seed: 7,
        }
    }

    #[test]
    fn fractions_are_respected_over_many_documents() {
        let s = spec();
        let mut counts = [0usize; 3];
        for i in 0..100_000i64 {
            counts[s.assign(DocKey::Int(i))] += 1;
        }
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        assert!((78_000..82_000).contains(&counts[1]), "{counts:?}");
        assert!((9_000..11_000).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn assignment_depends_on_key_and_seed_only() {
        let s = spec();
        let a: Vec<usize> = (0..1000).map(|i| s.assign(DocKey::Int(i))).collect();
        let b: Vec<usize> = (0..1000).rev().map(|i| s.assign(DocKey::Int(i))).collect();
        assert_eq!(a, b.into_iter().rev().collect::<Vec<_>>());
        let other = SplitSpec { seed: 8, ..spec() };
        let c: Vec<usize> = (0..1000).map(|i| other.assign(DocKey::Int(i))).collect();
        assert_ne!(a, c);
        assert_eq!(
            s.assign(DocKey::Str("doc-1")),
            s.assign(DocKey::Str("doc-1"))
        );
    }
}
