//! Which documents a pass over a mixed source keeps (docs/format.md §1.6).
//!
//! A source taken `r` times is read in `ceil(r)` passes. Pass `p` keeps
//! every document when `p < floor(r)`; the last, fractional pass keeps a
//! document when SipHash-2-4 keyed with `(seed, REPEAT_KEY)` over the
//! source's name (its length as 8 little-endian bytes, then its UTF-8
//! bytes) and the document key (hashed as by [`crate::split`]), mapped to
//! `[0, 1)` with 53 bits, is below `frac(r)`. The choice depends only on
//! the seed, the source's name and the document's key: no state is kept.

use std::hash::Hasher;

use siphasher::sip::SipHasher24;

use crate::split::DocKey;

/// Second half of the SipHash key (ASCII "seqwinRP").
pub const REPEAT_KEY: u64 = 0x7365_7177_696e_5250;

/// The documents one pass over one source keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassSelection<'a> {
    /// `mix.seed`.
    pub seed: u64,
    /// The source's name.
    pub name: &'a str,
    /// The pass (0-based).
    pub pass: u32,
    /// Passes over the source, `r`.
    pub passes: f64,
}

/// The point in `[0, 1)` a document of source `name` hashes to under `seed`.
pub fn repeat_point(seed: u64, name: &str, key: DocKey<'_>) -> f64 {
    let mut h = SipHasher24::new_with_keys(seed, REPEAT_KEY);
    h.write(&(name.len() as u64).to_le_bytes());
    h.write(name.as_bytes());
    match key {
        DocKey::Int(v) => h.write(&v.to_le_bytes()),
        DocKey::Str(s) => h.write(s.as_bytes()),
    }
    (h.finish() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl PassSelection<'_> {
    /// Whether the pass keeps the document with key `key`.
    pub fn keeps(&self, key: DocKey<'_>) -> bool {
        let whole = self.passes.floor();
        let pass = f64::from(self.pass);
        pass < whole
            || (pass == whole && repeat_point(self.seed, self.name, key) < self.passes - whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(passes: f64, pass: u32) -> usize {
        let s = PassSelection {
            seed: 3,
            name: "web",
            pass,
            passes,
        };
        (0..10_000).filter(|&i| s.keeps(DocKey::Int(i))).count()
    }

    #[test]
    fn whole_passes_keep_everything_and_the_last_keeps_its_fraction() {
        assert_eq!(kept(2.5, 0), 10_000);
        assert_eq!(kept(2.5, 1), 10_000);
        let half = kept(2.5, 2);
        assert!((4_800..5_200).contains(&half), "{half}");
        assert_eq!(kept(2.0, 2), 0);
        assert_eq!(kept(2.5, 3), 0);
        // The same documents, whatever the whole passes.
        let a = PassSelection {
            seed: 3,
            name: "web",
            pass: 0,
            passes: 0.5,
        };
        let b = PassSelection {
            pass: 2,
            passes: 2.5,
            ..a
        };
        assert!((0..1000).all(|i| a.keeps(DocKey::Int(i)) == b.keeps(DocKey::Int(i))));
    }

    #[test]
    fn the_choice_depends_on_seed_and_name() {
        let pick = |seed, name| {
            let s = PassSelection {
                seed,
                name,
                pass: 0,
                passes: 0.5,
            };
            (0..200)
                .map(|i| s.keeps(DocKey::Str(&format!("d{i}"))))
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(1, "a"), pick(1, "a"));
        assert_ne!(pick(1, "a"), pick(2, "a"));
        assert_ne!(pick(1, "a"), pick(1, "b"));
    }
}
