//! Decoding a Parquet data page's levels and values a bounded number at a
//! time from streams of its bytes ([`super::page_stream`]); the page
//! readers of the `parquet` crate decode whole pages, and its page decoders
//! are public only under its `experimental` feature. The RLE / bit-packing
//! hybrid of levels and dictionary indices, plain, dictionary-encoded and
//! DELTA_BINARY_PACKED integer values. Used by [`super::pages`].

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
    /// Bytes of whole groups read at once.
    bulk: Vec<u8>,
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
            bulk: Vec::new(),
        }
    }

    /// Reads the next run's header; false at the end of the data.
    fn next_run(&mut self) -> Result<bool, String> {
        let Some(header) = self.src.varint("an RLE run header")? else {
            return Ok(false);
        };
        let count = (header >> 1) as usize;
        if header & 1 == 1 {
            // `count` groups of 8 values, `width` bytes each.
            self.packed = (count.checked_mul(8)).ok_or("a bit-packed run is too long")?;
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
        let mut raw = [0u8; 8 * 8 + 9];
        let got = self.src.read(&mut raw[..self.width])?;
        self.held = (got * 8).checked_div(self.width).map_or(8, |n| n.min(8));
        unpack(&raw, self.width, &mut self.group);
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
                if self.next == 8 && left.min(self.packed) >= 8 {
                    // Whole groups at once (all of them needed, so all present).
                    let groups = (left.min(self.packed) / 8).min(4096);
                    let bytes = groups * self.width;
                    self.bulk.clear();
                    self.bulk.resize(bytes + 9, 0);
                    if self.src.read(&mut self.bulk[..bytes])? < bytes {
                        return Err("bit-packed values run past the data".into());
                    }
                    let at = out.len();
                    out.resize(at + groups * 8, 0);
                    unpack(&self.bulk, self.width, &mut out[at..]);
                    self.packed -= groups * 8;
                    left -= groups * 8;
                    continue;
                }
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

/// Unpacks `out.len()` values of `width` bits (at most 64), least
/// significant bit first, from `raw`, which holds them rounded up to whole
/// groups of 8 values and 9 bytes more. The
/// widths of token ids and their deltas (up to 32 bits) get a loop of their
/// own each, whose shifts the compiler knows.
pub(super) fn unpack(raw: &[u8], width: usize, out: &mut [u64]) {
    macro_rules! widths {
        ($($w:literal)*) => {
            match width {
                0 => out.fill(0),
                $($w => unpack_width::<$w>(raw, out),)*
                _ => unpack_any(raw, width, out),
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32)
}

/// [`unpack`] of `W`-bit values (1 to 32: a value and its bit offset fit
/// one 64-bit word), in groups of 8 values, `W` bytes each.
fn unpack_width<const W: usize>(raw: &[u8], out: &mut [u64]) {
    let mask = (1u64 << W) - 1;
    for (g, group) in out.chunks_mut(8).enumerate() {
        let bytes = &raw[g * W..g * W + W + 8];
        for (i, v) in group.iter_mut().enumerate() {
            let bit = i * W;
            let word = u64::from_le_bytes(bytes[bit / 8..bit / 8 + 8].try_into().expect("8"));
            *v = (word >> (bit % 8)) & mask;
        }
    }
}

fn unpack_any(raw: &[u8], width: usize, out: &mut [u64]) {
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    for (i, v) in out.iter_mut().enumerate() {
        let bit = i * width;
        let at = bit / 8;
        let word = u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        let mut value = word >> (bit % 8);
        if bit % 8 + width > 64 {
            value |= u64::from(raw[at + 8]) << (64 - bit % 8);
        }
        *v = value & mask;
    }
}

/// A stream of DELTA_BINARY_PACKED values: a header (block size,
/// miniblocks per block, value count, first value), then blocks of a
/// minimum delta, one bit width per miniblock, and the miniblocks' deltas
/// over the minimum, bit-packed. Sums wrap in the physical type's width.
pub(super) struct Delta {
    src: Stream,
    /// 4 or 8 bytes.
    width: usize,
    miniblocks: usize,
    per_miniblock: usize,
    /// Values not yet handed out, the first value among them while `first`.
    left: usize,
    first: bool,
    last: i64,
    min_delta: i64,
    widths: Vec<u8>,
    /// The next miniblock of the current block (`miniblocks`: a block header next).
    miniblock: usize,
    deltas: Vec<u64>,
    next: usize,
    raw: Vec<u8>,
}

impl Delta {
    /// Reads the header at the start of `src`; values of `width` bytes.
    pub(super) fn new(mut src: Stream, width: usize) -> Result<Delta, String> {
        let block = varint(&mut src)? as usize;
        let miniblocks = varint(&mut src)? as usize;
        let count = varint(&mut src)? as usize;
        let first = zigzag(&mut src)?;
        let per_miniblock = miniblock_size(block, miniblocks)?;
        Ok(Delta {
            src,
            width,
            miniblocks,
            per_miniblock,
            left: count,
            first: true,
            last: first,
            min_delta: 0,
            widths: vec![0; miniblocks],
            miniblock: miniblocks,
            deltas: Vec::new(),
            next: 0,
            raw: Vec::new(),
        })
    }

    /// Unpacks the next miniblock (reading a block header first when due).
    fn next_miniblock(&mut self) -> Result<(), String> {
        if self.miniblock == self.miniblocks {
            self.min_delta = zigzag(&mut self.src)?;
            self.src.read_exact(
                &mut self.widths,
                "a DELTA_BINARY_PACKED block header runs past the data",
            )?;
            self.miniblock = 0;
        }
        let bits = usize::from(self.widths[self.miniblock]);
        if bits > 8 * self.width {
            return Err(format!(
                "a DELTA_BINARY_PACKED miniblock of {bits}-bit deltas in a {}-bit column",
                8 * self.width
            ));
        }
        self.miniblock += 1;
        // Only the values left need to be present (the last miniblock may be cut short).
        let n = self.per_miniblock.min(self.left);
        self.raw.clear();
        self.raw.resize(self.per_miniblock * bits / 8 + 9, 0);
        let full = self.per_miniblock * bits / 8;
        let got = self.src.read(&mut self.raw[..full])?;
        if got < (n * bits).div_ceil(8) {
            return Err("DELTA_BINARY_PACKED values run past the data".into());
        }
        self.deltas.resize(n, 0);
        unpack(&self.raw, bits, &mut self.deltas);
        self.next = 0;
        Ok(())
    }

    /// Appends the next `n` values to `out`.
    fn read(&mut self, n: usize, out: &mut Vec<i64>) -> Result<(), String> {
        if n > self.left {
            return Err(format!(
                "a data page holds {} more values, {n} were asked for",
                self.left
            ));
        }
        let mut want = n;
        if want > 0 && self.first {
            out.push(self.last);
            self.first = false;
            self.left -= 1;
            want -= 1;
        }
        while want > 0 {
            if self.next == self.deltas.len() {
                self.next_miniblock()?;
            }
            let k = want.min(self.deltas.len() - self.next);
            let (min, wide) = (self.min_delta, self.width == 8);
            let mut last = self.last;
            out.extend(self.deltas[self.next..self.next + k].iter().map(|&d| {
                last = last.wrapping_add(min).wrapping_add(d as i64);
                if wide {
                    last
                } else {
                    i64::from(last as i32)
                }
            }));
            self.last = last;
            self.next += k;
            self.left -= k;
            want -= k;
        }
        Ok(())
    }
}

/// Values per miniblock of a DELTA_BINARY_PACKED header's block of `block`
/// values in `miniblocks` miniblocks, if a writer could have chosen them
/// (they size buffers, so they are not taken from the file unchecked).
pub(super) fn miniblock_size(block: usize, miniblocks: usize) -> Result<usize, String> {
    let per_miniblock = block.checked_div(miniblocks).unwrap_or(0);
    // Writers use blocks of 128 to 1024 values in 1 to 8 miniblocks.
    if block == 0
        || block > 1 << 16
        || !block.is_multiple_of(128)
        || per_miniblock == 0
        || !per_miniblock.is_multiple_of(32)
        || per_miniblock * miniblocks != block
    {
        return Err(format!(
            "a DELTA_BINARY_PACKED block of {block} values in {miniblocks} miniblocks"
        ));
    }
    Ok(per_miniblock)
}

fn varint(src: &mut Stream) -> Result<u64, String> {
    let header = "a DELTA_BINARY_PACKED header";
    (src.varint(header)?).ok_or_else(|| format!("{header} runs past the data"))
}

fn zigzag(src: &mut Stream) -> Result<i64, String> {
    let v = varint(src)?;
    Ok((v >> 1) as i64 ^ -((v & 1) as i64))
}

/// The values of the current data page.
pub(super) enum PageValues {
    /// Little-endian values of `width` bytes.
    Plain { src: Stream, width: usize },
    /// Indices into the chunk's dictionary.
    Dictionary(Hybrid),
    /// Deltas.
    Delta(Delta),
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
            PageValues::Delta(delta) => delta.read(n, out)?,
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
        Encoding::PLAIN
            | Encoding::RLE
            | Encoding::PLAIN_DICTIONARY
            | Encoding::RLE_DICTIONARY
            | Encoding::DELTA_BINARY_PACKED
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// An RLE run of five 3s, then one bit-packed group of eight 2-bit values.
    #[test]
    fn the_hybrid_decoder_reads_rle_and_bit_packed_runs_in_any_steps() {
        let data = Bytes::from_static(&[0x0A, 0x03, 0x03, 0xE4, 0xE4]);
        let expected = [3, 3, 3, 3, 3, 0, 1, 2, 3, 0, 1, 2, 3];
        for step in 1..=13 {
            let mut h = Hybrid::new(Stream::of(data.clone()), 2);
            let mut out = Vec::new();
            while out.len() < expected.len() {
                let n = step.min(expected.len() - out.len());
                h.read(n, &mut out).unwrap();
            }
            assert_eq!(out, expected, "in steps of {step}");
            assert_eq!(
                h.read(1, &mut out).unwrap_err(),
                "expected 1 values, the data holds 0"
            );
        }
    }

    #[test]
    fn plain_and_dictionary_values_decode_as_written() {
        let mut out = Vec::new();
        let mut plain = PageValues::Plain {
            src: Stream::of(Bytes::from_static(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])),
            width: 4,
        };
        plain.read(2, &[], &mut out).unwrap();
        assert_eq!(out, [1, -1]);
        assert!(plain.read(1, &[], &mut out).is_err());
        // Indices 1, 1, 0 as an RLE run of two 1s and a bit-packed group.
        let mut dict = PageValues::Dictionary(Hybrid::new(
            Stream::of(Bytes::from_static(&[0x04, 0x01, 0x03, 0x00])),
            1,
        ));
        out.clear();
        dict.read(3, &[70, 80], &mut out).unwrap();
        assert_eq!(out, [80, 80, 70]);
        let mut bad = PageValues::Dictionary(Hybrid::new(
            Stream::of(Bytes::from_static(&[0x02, 0x05])),
            3,
        ));
        assert_eq!(
            bad.read(1, &[70, 80], &mut out).unwrap_err(),
            "dictionary index 5 is past the dictionary's 2 entries"
        );
    }

    /// Every width, 0 to 64 bits, unpacks what a bit-by-bit packer packed,
    /// for counts that end inside a group of 8 and at its end.
    #[test]
    fn unpack_reads_every_width_as_packed_bit_by_bit() {
        for width in 0..=64usize {
            for n in [1usize, 7, 8, 9, 33, 64] {
                let mask = if width == 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                let values: Vec<u64> = (0..n as u64)
                    .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(i as u32) & mask)
                    .collect();
                let mut raw = vec![0u8; n.div_ceil(8) * width + 9];
                for (i, v) in values.iter().enumerate() {
                    for b in 0..width {
                        let bit = i * width + b;
                        raw[bit / 8] |= (((v >> b) & 1) as u8) << (bit % 8);
                    }
                }
                let mut out = vec![u64::MAX; n];
                unpack(&raw, width, &mut out);
                assert_eq!(out, values, "{n} values of {width} bits");
            }
        }
    }

    /// DELTA_BINARY_PACKED headers whose block sizes no writer uses (and
    /// which would size buffers from the file) are refused.
    #[test]
    fn delta_headers_with_unusable_block_sizes_are_refused() {
        let header = |bytes: &'static [u8]| {
            Delta::new(Stream::of(Bytes::from_static(bytes)), 4)
                .err()
                .unwrap()
        };
        // 1280 values in 39 miniblocks of 32 (39 × 32 ≠ 1280).
        assert_eq!(
            header(&[0x80, 0x0a, 0x27, 0x01, 0x00]),
            "a DELTA_BINARY_PACKED block of 1280 values in 39 miniblocks"
        );
        // 2^62 values in 2^57 miniblocks of 32.
        assert_eq!(
            header(&[
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x80, 0x80, 0x80, 0x80,
                0x80, 0x80, 0x80, 0x80, 0x02, 0x01, 0x00
            ]),
            "a DELTA_BINARY_PACKED block of 4611686018427387904 values in 144115188075855872 miniblocks"
        );
        // 128 values in 4 miniblocks, 3 values, first 5, min delta 1, widths
        // 1, 0, 0, 0, deltas over the minimum 1, 0 (then padding).
        let mut values = PageValues::Delta(
            Delta::new(
                Stream::of(Bytes::from_static(&[
                    0x80, 0x01, 0x04, 0x03, 0x0a, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
                    0x00,
                ])),
                4,
            )
            .unwrap(),
        );
        let mut out = Vec::new();
        values.read(3, &[], &mut out).unwrap();
        assert_eq!(out, [5, 7, 8]);
        assert_eq!(
            values.read(1, &[], &mut out).unwrap_err(),
            "a data page holds 0 more values, 1 were asked for"
        );
    }
}
