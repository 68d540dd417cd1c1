//! Decoding a Parquet data page's levels and values a bounded number at a
//! time (the page readers of the `parquet` crate decode whole pages, and its
//! page decoders are public only under its `experimental` feature): the RLE /
//! bit-packing hybrid of levels and dictionary indices, plain and
//! dictionary-encoded integer values. Used by [`super::pages`].

use bytes::Bytes;
use parquet::basic::Encoding;

/// A stream of the RLE / bit-packing hybrid encoding (levels, dictionary
/// indices) of `width`-bit values, decoded as far as asked.
pub(super) struct Hybrid {
    data: Bytes,
    /// Next run header.
    pos: usize,
    width: usize,
    /// The current RLE run: values left and the value.
    repeat: (usize, u64),
    /// The current bit-packed run: values left and the next one's bit offset.
    packed: (usize, usize),
}

impl Hybrid {
    pub(super) fn new(data: Bytes, width: u8) -> Hybrid {
        Hybrid {
            data,
            pos: 0,
            width: width as usize,
            repeat: (0, 0),
            packed: (0, 0),
        }
    }

    /// Reads the next run's header; false at the end of the data.
    fn next_run(&mut self) -> Result<bool, String> {
        if self.pos >= self.data.len() {
            return Ok(false);
        }
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let byte = *(self.data.get(self.pos))
                .ok_or_else(|| "an RLE run header runs past the data".to_string())?;
            self.pos += 1;
            header |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 56 {
                return Err("an RLE run header is too long".into());
            }
        }
        let count = (header >> 1) as usize;
        if header & 1 == 1 {
            // `count` groups of 8 values, `width` bytes each.
            self.packed = (count * 8, self.pos * 8);
            self.pos += count * self.width;
        } else {
            let bytes = self.width.div_ceil(8);
            let raw = (self.data.get(self.pos..self.pos + bytes))
                .ok_or_else(|| "an RLE run's value runs past the data".to_string())?;
            let mut value = [0u8; 8];
            value[..bytes].copy_from_slice(raw);
            self.pos += bytes;
            self.repeat = (count, u64::from_le_bytes(value));
        }
        Ok(true)
    }

    /// Appends the next `n` values to `out`.
    pub(super) fn read(&mut self, n: usize, out: &mut Vec<u64>) -> Result<(), String> {
        let mask = if self.width == 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        };
        let mut left = n;
        while left > 0 {
            if self.repeat.0 > 0 {
                let k = left.min(self.repeat.0);
                out.extend(std::iter::repeat_n(self.repeat.1, k));
                self.repeat.0 -= k;
                left -= k;
            } else if self.packed.0 > 0 {
                let k = left.min(self.packed.0);
                let data = self.data.as_ref();
                let mut bit = self.packed.1;
                for _ in 0..k {
                    let at = bit / 8;
                    let word = match data.get(at..at + 8) {
                        Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
                        None => {
                            let tail = data.get(at..).unwrap_or_default();
                            let mut w = [0u8; 8];
                            w[..tail.len()].copy_from_slice(tail);
                            if (bit + self.width).div_ceil(8) > data.len() {
                                return Err("bit-packed values run past the data".into());
                            }
                            u64::from_le_bytes(w)
                        }
                    };
                    out.push((word >> (bit % 8)) & mask);
                    bit += self.width;
                }
                self.packed = (self.packed.0 - k, bit);
                left -= k;
            } else if !self.next_run()? {
                return Err(format!("expected {n} values, the data holds {}", n - left));
            }
        }
        Ok(())
    }
}

/// The values of the current data page.
pub(super) enum PageValues {
    /// Little-endian values of `width` bytes, from `pos`.
    Plain {
        data: Bytes,
        pos: usize,
        width: usize,
    },
    /// Indices into the chunk's dictionary.
    Dictionary(Hybrid),
}

impl PageValues {
    /// Appends the next `n` values to `out`.
    pub(super) fn read(
        &mut self,
        n: usize,
        dictionary: &[i64],
        out: &mut Vec<i64>,
    ) -> Result<(), String> {
        match self {
            PageValues::Plain { data, pos, width } => {
                let bytes = (data.get(*pos..*pos + n * *width))
                    .ok_or_else(|| format!("a data page holds fewer than {n} more values"))?;
                match width {
                    4 => out.extend(
                        (bytes.chunks_exact(4))
                            .map(|b| i64::from(i32::from_le_bytes(b.try_into().expect("4")))),
                    ),
                    _ => out.extend(
                        (bytes.chunks_exact(8))
                            .map(|b| i64::from_le_bytes(b.try_into().expect("8"))),
                    ),
                }
                *pos += n * *width;
            }
            PageValues::Dictionary(indices) => {
                let mut raw = Vec::with_capacity(n);
                indices.read(n, &mut raw)?;
                for i in raw {
                    let v = dictionary.get(i as usize).ok_or_else(|| {
                        format!(
                            "dictionary index {i} is past the dictionary's {} entries",
                            dictionary.len()
                        )
                    })?;
                    out.push(*v);
                }
            }
        }
        Ok(())
    }
}

/// The encodings a chunk read in pieces may use (others are read whole).
pub(super) fn supported(encoding: Encoding) -> bool {
    matches!(
        encoding,
        Encoding::PLAIN | Encoding::RLE | Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY
    )
}

/// The RLE-encoded levels at `offset` of a v1 data page (4-byte length
/// first); advances `offset` past them.
pub(super) fn v1_levels(
    buf: &Bytes,
    offset: &mut usize,
    encoding: Encoding,
) -> Result<Bytes, String> {
    if encoding != Encoding::RLE {
        return Err(format!(
            "levels encoded as {encoding} cannot be read in pieces"
        ));
    }
    let at = *offset;
    let len = buf
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .filter(|len| at + 4 + len <= buf.len())
        .ok_or_else(|| "a data page's levels run past its end".to_string())?;
    *offset = at + 4 + len;
    Ok(buf.slice(at + 4..at + 4 + len))
}
