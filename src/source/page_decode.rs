//! Decoding a Parquet data page's levels and values a bounded number at a
//! time from streams of its bytes ([`super::page_stream`]); the page
//! readers of the `parquet` crate decode whole pages, and its page decoders
//! are public only under its `experimental` feature. The RLE / bit-packing
//! hybrid of levels and dictionary indices, plain and dictionary-encoded
//! integer values. Used by [`super::pages`].

use parquet::basic::Encoding;

use super::page_stream::Stream;

/// A stream of the RLE / bit-packing hybrid encoding (levels, dictionary
/// indices) of `width`-bit values, decoded as far as asked.
pub(super) struct Hybrid {
    src: Stream,
    width: usize,
    /// The current RLE run: values left and the value.
    repeat: (usize, u64),
    /// The current bit-packed run: values left, counting those of `group`
    /// from `next`.
    packed: usize,
    group: [u64; 8],
    next: usize,
    /// Values of `group` the data held (fewer than 8 when it ended early).
    held: usize,
}

impl Hybrid {
    pub(super) fn new(src: Stream, width: u8) -> Hybrid {
        Hybrid {
            src,
            width: width as usize,
            repeat: (0, 0),
            packed: 0,
            group: [0; 8],
            next: 8,
            held: 8,
        }
    }

    /// Reads the next run's header; false at the end of the data.
    fn next_run(&mut self) -> Result<bool, String> {
        let Some(mut byte) = self.src.byte()? else {
            return Ok(false);
        };
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            header |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 56 {
                return Err("an RLE run header is too long".into());
            }
            byte = (self.src.byte()?).ok_or("an RLE run header runs past the data")?;
        }
        let count = (header >> 1) as usize;
        if header & 1 == 1 {
            // `count` groups of 8 values, `width` bytes each.
            self.packed = count * 8;
            self.next = 8;
        } else {
            let mut value = [0u8; 8];
            let bytes = self.width.div_ceil(8);
            self.src
                .read_exact(&mut value[..bytes], "an RLE run's value runs past the data")?;
            self.repeat = (count, u64::from_le_bytes(value));
        }
        Ok(true)
    }

    /// Unpacks the next group of 8 bit-packed values.
    fn next_group(&mut self) -> Result<(), String> {
        let mut raw = [0u8; 8 * 8 + 8];
        let got = self.src.read(&mut raw[..self.width])?;
        self.held = (got * 8).checked_div(self.width).map_or(8, |n| n.min(8));
        let mask = if self.width == 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        };
        for (i, v) in self.group.iter_mut().enumerate() {
            let bit = i * self.width;
            let at = bit / 8;
            let word = u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
            let mut value = word >> (bit % 8);
            if bit % 8 + self.width > 64 {
                value |= u64::from(raw[at + 8]) << (64 - bit % 8);
            }
            *v = value & mask;
        }
        self.next = 0;
        Ok(())
    }

    /// Appends the next `n` values to `out`.
    pub(super) fn read(&mut self, n: usize, out: &mut Vec<u64>) -> Result<(), String> {
        let mut left = n;
        while left > 0 {
            if self.repeat.0 > 0 {
                let k = left.min(self.repeat.0);
                out.extend(std::iter::repeat_n(self.repeat.1, k));
                self.repeat.0 -= k;
                left -= k;
            } else if self.packed > 0 {
                if self.next == 8 {
                    self.next_group()?;
                }
                let k = left.min(self.packed).min(8 - self.next);
                if self.next + k > self.held {
                    return Err("bit-packed values run past the data".into());
                }
                out.extend_from_slice(&self.group[self.next..self.next + k]);
                self.next += k;
                self.packed -= k;
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
    /// Little-endian values of `width` bytes.
    Plain { src: Stream, width: usize },
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
            PageValues::Plain { src, width } => {
                let mut buf = [0u8; 8 << 10];
                let per = buf.len() / *width;
                let mut left = n;
                while left > 0 {
                    let k = left.min(per);
                    let bytes = &mut buf[..k * *width];
                    src.read_exact(
                        bytes,
                        &format!("a data page holds fewer than {n} more values"),
                    )?;
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
                    left -= k;
                }
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
