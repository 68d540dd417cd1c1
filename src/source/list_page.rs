//! Decoding the data pages of a token-list column — a list whose every
//! entry holds `size` non-null integers, stored as one Parquet leaf with
//! maximum repetition and definition level 1, the shape of seqwin's
//! `input`, `target`, `loss_mask`, … — straight into one flat buffer: the
//! hot path of the trainer-side readers.
//!
//! parquet's column reader decodes both level streams into `i16` buffers,
//! scans them for record boundaries and null counts, and then the caller
//! checks them once more against the list shape; here the levels are only
//! walked run by run (an RLE run of `size - 1` ones is one comparison) and
//! the values are unpacked in place:
//!
//! ```text
//!  page (v1): [len][rep levels, RLE/bit-packed][len][def levels][values]
//!  page (v2): [rep levels][def levels][values]    (lengths in the header)
//!    rep: a 0 exactly where an item starts a list (position mod size = 0)
//!    def: every level 1 (no null list, no null item)
//!    values: PLAIN (little-endian) or DELTA_BINARY_PACKED ──► out[filled..]
//! ```
//!
//! Dictionary-encoded pages (and any other encoding) are reported as
//! [`PageFit::Unsupported`]: the caller reads that chunk another way.

use parquet::basic::Encoding;
use parquet::column::page::Page;

use super::page_decode::{miniblock_size, unpack};
use crate::thrift::Reader;

/// An integer type a token list holds: `i32` or `i64`.
pub trait ListItem: Copy + Default + Send + 'static {
    /// Bytes per value.
    const WIDTH: usize;
    /// From `WIDTH` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
    /// The low `WIDTH` bytes of `v` (sums of deltas wrap in the type's width).
    fn wrapping_from(v: u64) -> Self;
}

impl ListItem for i32 {
    const WIDTH: usize = 4;
    fn from_le(bytes: &[u8]) -> i32 {
        i32::from_le_bytes(bytes.try_into().expect("4 bytes"))
    }
    fn wrapping_from(v: u64) -> i32 {
        v as u32 as i32
    }
}

impl ListItem for i64 {
    const WIDTH: usize = 8;
    fn from_le(bytes: &[u8]) -> i64 {
        i64::from_le_bytes(bytes.try_into().expect("8 bytes"))
    }
    fn wrapping_from(v: u64) -> i64 {
        v as i64
    }
}

/// Whether a page could be decoded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFit {
    /// Its values were appended.
    Decoded,
    /// A dictionary page, or values or levels in an encoding this decoder
    /// does not read: nothing was appended.
    Unsupported,
}

/// Appends the values of consecutive data pages of a token-list column (of
/// one column chunk) to a buffer, checking that they are lists of `size`
/// non-null items (across page boundaries too) and no more than expected.
pub struct ListPages<'a, T> {
    out: &'a mut Vec<T>,
    /// Items appended, and the most the chunk holds.
    filled: usize,
    items: usize,
    size: usize,
    /// Scratch for one miniblock's unpacked deltas.
    deltas: Vec<u64>,
    /// Scratch for one miniblock's packed bytes, with slack for the unpacker.
    raw: Vec<u8>,
}

impl<'a, T: ListItem> ListPages<'a, T> {
    /// Appends to `out` the `items` values of lists of `size` items.
    pub fn new(out: &'a mut Vec<T>, size: usize, items: usize) -> ListPages<'a, T> {
        out.reserve(items);
        ListPages {
            out,
            filled: 0,
            items,
            size: size.max(1),
            deltas: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// Checks that the pages held every item expected.
    pub fn finish(self) -> Result<(), String> {
        if self.filled != self.items {
            return Err(format!(
                "expected {} items in lists of {}, the data pages hold {}",
                self.items, self.size, self.filled
            ));
        }
        Ok(())
    }

    /// Decodes `page` after the pages before it.
    pub fn page(&mut self, page: &Page) -> Result<PageFit, String> {
        let (buf, n, encoding, rep, def, values) = match page {
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                if *rep_level_encoding != Encoding::RLE || *def_level_encoding != Encoding::RLE {
                    return Ok(PageFit::Unsupported);
                }
                let (rep, rest) = prefixed(buf, 0, "repetition levels")?;
                let (def, values) = prefixed(buf, rest, "definition levels")?;
                (buf, *num_values as usize, *encoding, rep, def, values)
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                num_nulls,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                if *num_nulls != 0 {
                    return Err(format!("a data page holds {num_nulls} nulls"));
                }
                let r = *rep_levels_byte_len as usize;
                let d = r + *def_levels_byte_len as usize;
                if d > buf.len() {
                    return Err("the levels run past the data page".into());
                }
                (buf, *num_values as usize, *encoding, 0..r, r..d, d)
            }
            Page::DictionaryPage { .. } => return Ok(PageFit::Unsupported),
        };
        if !matches!(encoding, Encoding::PLAIN | Encoding::DELTA_BINARY_PACKED) {
            return Ok(PageFit::Unsupported);
        }
        if n > self.items - self.filled {
            return Err(format!(
                "the data pages hold more than the {} items expected",
                self.items
            ));
        }
        check_levels(&buf[rep], n, Some((self.filled, self.size)))?;
        check_levels(&buf[def], n, None)?;
        let values = &buf[values..];
        if encoding == Encoding::PLAIN {
            let bytes = values
                .get(..n * T::WIDTH)
                .ok_or_else(|| format!("a PLAIN data page holds fewer than {n} values"))?;
            self.out
                .extend(bytes.chunks_exact(T::WIDTH).map(|b| T::from_le(b)));
        } else {
            delta(values, n, self.out, &mut self.deltas, &mut self.raw)?;
        }
        self.filled += n;
        Ok(PageFit::Decoded)
    }
}

/// The range of a v1 page's level stream that starts at `at` with its
/// 4-byte length, and where the next part starts.
fn prefixed(buf: &[u8], at: usize, what: &str) -> Result<(std::ops::Range<usize>, usize), String> {
    let len = buf
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or_else(|| format!("the {what} run past the data page"))?;
    let end = at + 4 + len;
    if end > buf.len() {
        return Err(format!("the {what} run past the data page"));
    }
    Ok((at + 4..end, end))
}

/// Checks `n` 1-bit levels of the RLE / bit-packing hybrid in `data`: with
/// `lists` = `Some((pos, size))`, repetition levels of items `pos ..` of
/// lists of `size` items (0 where an item starts a list, else 1); with
/// `None`, definition levels (every one 1). Runs of one value are checked
/// whole.
fn check_levels(data: &[u8], n: usize, lists: Option<(usize, usize)>) -> Result<(), String> {
    let def = lists.is_none();
    let (pos, size) = lists.unwrap_or((0, 1));
    let what = if def { "definition" } else { "repetition" };
    let bad = |at: usize| {
        if def {
            format!("item {at} of a data page is null (definition level 0)")
        } else {
            format!(
                "the repetition levels of a data page do not describe lists of {size} items \
                 (at item {at} of the page)"
            )
        }
    };
    // Items before this page fix where in its list the first one is.
    let mut q = pos % size;
    let mut done = 0usize;
    let mut r = Reader::new(data);
    while done < n {
        let header = r
            .varint()
            .map_err(|_| format!("the {what} levels end after {done} of {n}"))?;
        let count = (header >> 1) as usize;
        if header & 1 == 0 {
            let value = r
                .byte()
                .map_err(|_| format!("an RLE run of {what} levels runs past the data"))?;
            let k = count.min(n - done);
            let fits = if def {
                value == 1
            } else if size == 1 {
                value == 0
            } else if value == 0 {
                k <= 1 && q == 0
            } else {
                value == 1 && q != 0 && q + k <= size
            };
            if !fits && k > 0 {
                return Err(bad(done));
            }
            q = (q + k) % size;
            done += k;
        } else {
            // `count` groups of 8 one-bit levels, a byte each.
            let bits = r
                .take(count)
                .map_err(|_| format!("bit-packed {what} levels run past the data"))?;
            let k = (8 * count).min(n - done);
            for i in 0..k {
                let level = (bits[i / 8] >> (i % 8)) & 1;
                let want = if def { 1 } else { u8::from(q != 0) };
                if level != want {
                    return Err(bad(done + i));
                }
                q = (q + 1) % size;
            }
            done += k;
        }
    }
    Ok(())
}

/// Appends the `n` values of DELTA_BINARY_PACKED `data` to `out`: a
/// header (block size, miniblocks per block, value count, first value),
/// then blocks of a minimum delta, one bit width per miniblock and the
/// miniblocks' deltas over the minimum, bit-packed. Sums wrap.
fn delta<T: ListItem>(
    data: &[u8],
    n: usize,
    out: &mut Vec<T>,
    deltas: &mut Vec<u64>,
    raw: &mut Vec<u8>,
) -> Result<(), String> {
    let short = |_| "a DELTA_BINARY_PACKED header runs past the data".to_string();
    let mut r = Reader::new(data);
    let block = r.varint().map_err(short)? as usize;
    let miniblocks = r.varint().map_err(short)? as usize;
    let count = r.varint().map_err(short)? as usize;
    let mut last = r.zigzag().map_err(short)? as u64;
    let per_miniblock = miniblock_size(block, miniblocks)?;
    if count != n {
        return Err(format!(
            "a DELTA_BINARY_PACKED header counts {count} values, the data page {n}"
        ));
    }
    if n == 0 {
        return Ok(());
    }
    out.push(T::wrapping_from(last));
    let mut rest = n - 1;
    deltas.resize(per_miniblock, 0);
    while rest > 0 {
        let min = r.zigzag().map_err(short)? as u64;
        let widths = r.take(miniblocks).map_err(short)?;
        for &bits in widths {
            if rest == 0 {
                break;
            }
            let bits = usize::from(bits);
            // Deltas of i32 values computed in 64 bits may take 33.
            if bits > 64 {
                return Err(format!(
                    "a DELTA_BINARY_PACKED miniblock of {bits}-bit deltas"
                ));
            }
            let k = per_miniblock.min(rest);
            let full = per_miniblock * bits / 8;
            let need = (k * bits).div_ceil(8);
            // The unpacker reads up to 9 bytes past a whole miniblock: the
            // page's own bytes when it has them, else a padded copy.
            let packed = if r.left() >= full + 9 {
                r.rest()
            } else {
                raw.clear();
                raw.extend_from_slice(r.rest());
                raw.resize(full + 9, 0);
                raw.as_slice()
            };
            let have = r.left().min(full);
            if have < need {
                return Err("DELTA_BINARY_PACKED values run past the data".into());
            }
            unpack(packed, bits, &mut deltas[..k]);
            r.take(have).map_err(short)?;
            last = prefix_sums(&mut deltas[..k], min, last, out);
            rest -= k;
        }
    }
    Ok(())
}

/// Appends `last + Σ (deltas[..=i] + min)` for every `i` to `out` and
/// returns the last sum. Four values a step whose sums of deltas do not
/// depend on `last`, so that the chain of dependent additions is one per
/// four values instead of two per value.
fn prefix_sums<T: ListItem>(deltas: &mut [u64], min: u64, mut last: u64, out: &mut Vec<T>) -> u64 {
    for d in deltas.iter_mut() {
        *d = d.wrapping_add(min);
    }
    let mut quads = deltas.chunks_exact(4);
    for q in &mut quads {
        let s1 = q[0].wrapping_add(q[1]);
        let s3 = s1.wrapping_add(q[2].wrapping_add(q[3]));
        let sums = [
            last.wrapping_add(q[0]),
            last.wrapping_add(s1),
            last.wrapping_add(s1).wrapping_add(q[2]),
            last.wrapping_add(s3),
        ];
        out.extend(sums.map(T::wrapping_from));
        last = sums[3];
    }
    out.extend(quads.remainder().iter().map(|&d| {
        last = last.wrapping_add(d);
        T::wrapping_from(last)
    }));
    last
}
