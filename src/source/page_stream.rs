//! A Parquet page's bytes read a bounded buffer at a time, decompressed as
//! they are read: a document stored as one data page of hundreds of MiB is
//! decoded without holding that page (the `parquet` crate's page readers
//! decompress a whole page into memory).
//!
//! [`RangeRead`] reads a byte range of the file (or of the fetched object
//! bytes) in chunks; [`decompress`] wraps it in a streaming decoder of the
//! column chunk's codec — zstd and gzip through their crates, snappy and
//! LZ4_RAW here, with a sliding window of the output; [`Stream`] serves the
//! decoded bytes to the level and value decoders.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use parquet::basic::Compression;
use parquet::file::reader::ChunkReader;

/// Bytes fetched from the file per read of a [`RangeRead`], at most.
const RANGE_CHUNK: usize = 256 << 10;

/// Decoded bytes a [`Stream`] buffers.
const STREAM_BUFFER: usize = 64 << 10;

/// Where a page stream reads its bytes: a local file, an object's fetched
/// bytes (`store::Ranges`) or its blocks fetched on demand (`store::Blocks`).
pub(super) trait ByteSource: Send + Sync {
    fn bytes(&self, start: u64, len: usize) -> Result<Bytes, String>;
}

impl<R: ChunkReader> ByteSource for R {
    fn bytes(&self, start: u64, len: usize) -> Result<Bytes, String> {
        self.get_bytes(start, len).map_err(|e| e.to_string())
    }
}

/// The byte range `[pos, end)` of a file, read `step` bytes at a time.
pub(super) struct RangeRead {
    file: Arc<dyn ByteSource>,
    pos: u64,
    end: u64,
    step: usize,
    chunk: Bytes,
}

impl RangeRead {
    /// Reads in steps of `step` bytes (at most [`RANGE_CHUNK`]).
    pub(super) fn new(file: Arc<dyn ByteSource>, pos: u64, end: u64, step: usize) -> RangeRead {
        RangeRead {
            file,
            pos,
            end,
            step: step.clamp(1, RANGE_CHUNK),
            chunk: Bytes::new(),
        }
    }

    /// An input buffer's size for this range: its length, at most 64 KiB.
    fn buffer(&self) -> usize {
        (self.end.saturating_sub(self.pos)).clamp(1, 64 << 10) as usize
    }
}

impl Read for RangeRead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.chunk.is_empty() && self.pos < self.end {
            let n = (self.end - self.pos).min(self.step as u64) as usize;
            self.chunk = self.file.bytes(self.pos, n).map_err(io::Error::other)?;
            self.pos += n as u64;
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// Whether pages compressed with `codec` can be read as streams.
pub(super) fn streamable(codec: Compression) -> bool {
    matches!(
        codec,
        Compression::UNCOMPRESSED
            | Compression::SNAPPY
            | Compression::GZIP(_)
            | Compression::ZSTD(_)
            | Compression::LZ4_RAW
    )
}

/// `raw` (compressed with `codec`) decompressed as it is read.
pub(super) fn decompress(
    codec: Compression,
    raw: RangeRead,
) -> Result<Box<dyn Read + Send>, String> {
    Ok(match codec {
        Compression::UNCOMPRESSED => Box::new(raw),
        Compression::SNAPPY => Box::new(Windowed::new(raw, Lz::Snappy)),
        Compression::LZ4_RAW => Box::new(Windowed::new(raw, Lz::Lz4)),
        Compression::GZIP(_) => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(raw.buffer(), raw),
        )),
        Compression::ZSTD(_) => Box::new(
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(raw.buffer(), raw))
                .map_err(|e| format!("zstd: {e}"))?,
        ),
        other => {
            return Err(format!(
                "pages compressed with {other} cannot be read as streams"
            ))
        }
    })
}

/// The two LZ77 formats decoded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lz {
    /// Snappy's raw format (a length, then literals and copies).
    Snappy,
    /// An LZ4 block (sequences of literals and a match).
    Lz4,
}

impl Lz {
    /// How far back a copy may reach: LZ4's offsets have 16 bits; snappy's
    /// compressors (the reference one and the `snap` crate) compress blocks
    /// of 64 KiB independently, so a window of 1 MiB is generous.
    fn window(self) -> usize {
        match self {
            Lz::Snappy => 1 << 20,
            Lz::Lz4 => 1 << 16,
        }
    }
}

/// A streaming decoder of [`Lz`] data that keeps a window of its output.
struct Windowed {
    input: BufReader<RangeRead>,
    format: Lz,
    /// Output kept (the window) and not yet served (from `served`).
    out: Vec<u8>,
    served: usize,
    /// Literal bytes still to copy from the input.
    literal: usize,
    /// The copy in progress: its distance back and bytes left.
    copy: (usize, usize),
    /// LZ4: the match that follows the current literals is still to be read.
    lz4_match: Option<u8>,
    started: bool,
    done: bool,
}

impl Windowed {
    fn new(input: RangeRead, format: Lz) -> Windowed {
        Windowed {
            input: BufReader::with_capacity(input.buffer(), input),
            format,
            out: Vec::new(),
            served: 0,
            literal: 0,
            copy: (0, 0),
            lz4_match: None,
            started: false,
            done: false,
        }
    }

    /// The next input byte (`None` at the end of the input).
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let b = self.input.fill_buf()?.first().copied();
        if b.is_some() {
            self.input.consume(1);
        }
        Ok(b)
    }

    fn need(&mut self) -> io::Result<u8> {
        self.byte()?
            .ok_or_else(|| corrupt(self.format, "the data ends inside an element"))
    }

    /// A little-endian integer of `n` bytes.
    fn le(&mut self, n: usize) -> io::Result<usize> {
        let mut v = 0usize;
        for i in 0..n {
            v |= usize::from(self.need()?) << (8 * i);
        }
        Ok(v)
    }

    /// Reads the next element's header; false at the end of the data.
    fn next_element(&mut self) -> io::Result<bool> {
        match self.format {
            Lz::Snappy => {
                if !self.started {
                    // The uncompressed length (a varint): not needed.
                    while self.need()? & 0x80 != 0 {}
                    self.started = true;
                }
                let Some(tag) = self.byte()? else {
                    return Ok(false);
                };
                let kind = tag & 3;
                let upper = usize::from(tag >> 2);
                match kind {
                    0 if upper < 60 => self.literal = upper + 1,
                    0 => self.literal = self.le(upper - 59)? + 1,
                    1 => {
                        let offset = ((upper >> 3) << 8) | usize::from(self.need()?);
                        self.copy = (offset, (upper & 7) + 4);
                    }
                    2 => self.copy = (self.le(2)?, upper + 1),
                    _ => self.copy = (self.le(4)?, upper + 1),
                }
            }
            Lz::Lz4 => {
                if let Some(token) = self.lz4_match.take() {
                    if self.input.fill_buf()?.is_empty() {
                        // The block ends after a sequence's literals.
                        return Ok(false);
                    }
                    let offset = self.le(2)?;
                    let len = self.lz4_length(token & 15)? + 4;
                    self.copy = (offset, len);
                } else {
                    let Some(token) = self.byte()? else {
                        return Ok(false);
                    };
                    self.literal = self.lz4_length(token >> 4)?;
                    self.lz4_match = Some(token);
                }
            }
        }
        // The output kept is at least the window once that much is decoded
        // (see `produce`): a copy from further back fails at any read size.
        let (offset, kept) = (self.copy.0, self.out.len().min(self.format.window()));
        if self.copy.1 > 0 && (offset == 0 || offset > kept) {
            return Err(corrupt(
                self.format,
                &format!("a copy reaches {offset} bytes back, {kept} are kept"),
            ));
        }
        Ok(true)
    }

    /// An LZ4 length: `nibble`, extended by bytes while they are 255.
    fn lz4_length(&mut self, nibble: u8) -> io::Result<usize> {
        let mut len = usize::from(nibble);
        if nibble == 15 {
            loop {
                let b = self.need()?;
                len += usize::from(b);
                if b != 255 {
                    break;
                }
            }
        }
        Ok(len)
    }

    /// Decodes until `want` bytes are pending or the data ends.
    fn produce(&mut self, want: usize) -> io::Result<()> {
        let window = self.format.window();
        if self.served > 4 * window {
            let drop = self.served - window;
            self.out.drain(..drop);
            self.served -= drop;
        }
        while self.out.len() - self.served < want && !self.done {
            let pending = self.out.len() - self.served;
            if self.literal > 0 {
                let n = self.literal.min(want - pending).min(64 << 10);
                let at = self.out.len();
                self.out.resize(at + n, 0);
                self.input.read_exact(&mut self.out[at..])?;
                self.literal -= n;
            } else if self.copy.1 > 0 {
                let (offset, left) = self.copy;
                let n = left.min(want - pending).min(64 << 10);
                let from = self.out.len() - offset;
                if offset >= n {
                    self.out.extend_from_within(from..from + n);
                } else {
                    for i in 0..n {
                        let b = self.out[from + i];
                        self.out.push(b);
                    }
                }
                self.copy.1 -= n;
            } else if !self.next_element()? {
                self.done = true;
            }
        }
        Ok(())
    }
}

impl Read for Windowed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out.len() == self.served {
            self.produce(buf.len().max(1))?;
        }
        let n = buf.len().min(self.out.len() - self.served);
        buf[..n].copy_from_slice(&self.out[self.served..self.served + n]);
        self.served += n;
        Ok(n)
    }
}

fn corrupt(format: Lz, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{format:?} data: {what}"),
    )
}

/// Decoded bytes served in order, a buffer at a time; `left` more at most.
pub(super) struct Stream {
    src: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    left: u64,
}

impl Stream {
    /// Buffers `capacity` bytes (at most [`STREAM_BUFFER`]) at a time.
    pub(super) fn new(src: Box<dyn Read + Send>, capacity: usize) -> Stream {
        Stream {
            src,
            buf: vec![0; capacity.clamp(1, STREAM_BUFFER)],
            pos: 0,
            len: 0,
            left: u64::MAX,
        }
    }

    /// A stream of bytes held in memory.
    pub(super) fn of(bytes: Bytes) -> Stream {
        let len = bytes.len();
        Stream::new(Box::new(bytes.reader()), len)
    }

    /// Serves at most `n` more bytes (a limit only ever narrows).
    pub(super) fn limit(&mut self, n: u64) {
        self.left = self.left.min(n);
    }

    /// Bytes buffered and allowed; refills when none are (0 at the end).
    fn available(&mut self) -> Result<usize, String> {
        if self.pos == self.len && self.left > 0 {
            self.pos = 0;
            self.len = loop {
                match self.src.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.to_string()),
                }
            };
        }
        Ok(((self.len - self.pos) as u64).min(self.left) as usize)
    }

    /// The next byte (`None` at the end).
    pub(super) fn byte(&mut self) -> Result<Option<u8>, String> {
        if self.available()? == 0 {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        self.left -= 1;
        Ok(Some(b))
    }

    /// Fills `out` as far as the data goes; returns the bytes read.
    pub(super) fn read(&mut self, out: &mut [u8]) -> Result<usize, String> {
        let mut done = 0;
        while done < out.len() {
            let n = self.available()?.min(out.len() - done);
            if n == 0 {
                break;
            }
            out[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            self.left -= n as u64;
            done += n;
        }
        Ok(done)
    }

    /// Fills `out` or fails with `what`.
    pub(super) fn read_exact(&mut self, out: &mut [u8], what: &str) -> Result<(), String> {
        if self.read(out)? < out.len() {
            return Err(what.to_string());
        }
        Ok(())
    }

    /// An unsigned LEB128 varint (`None` at the end; `what` names it in errors).
    pub(super) fn varint(&mut self, what: &str) -> Result<Option<u64>, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(b) = self.byte()? else {
                return match shift {
                    0 => Ok(None),
                    _ => Err(format!("{what} runs past the data")),
                };
            };
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(Some(v));
            }
        }
        Err(format!("{what} is too long"))
    }

    /// A little-endian `u32`.
    pub(super) fn u32(&mut self, what: &str) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Skips `n` bytes or fails with `what`.
    pub(super) fn skip(&mut self, mut n: u64, what: &str) -> Result<(), String> {
        while n > 0 {
            let k = (self.available()? as u64).min(n) as usize;
            if k == 0 {
                return Err(what.to_string());
            }
            self.pos += k;
            self.left -= k as u64;
            n -= k as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_from_before_the_data_is_refused() {
        // Snappy: length 4, then a copy of 4 bytes from 1 byte back (1-byte offset form).
        let data = Bytes::from_static(&[0x04, 0x01, 0x01]);
        let file: Arc<dyn ByteSource> = Arc::new(data);
        let raw = RangeRead::new(file, 0, 3, 3);
        let mut s = Stream::new(decompress(Compression::SNAPPY, raw).unwrap(), 4);
        assert_eq!(
            s.read(&mut [0u8; 4]).unwrap_err(),
            "Snappy data: a copy reaches 1 bytes back, 0 are kept"
        );
    }

    #[test]
    fn a_limited_stream_serves_no_more_than_its_limit() {
        let mut s = Stream::of(Bytes::from_static(&[1, 2, 3, 4, 5, 6]));
        s.skip(1, "short").unwrap();
        s.limit(3);
        let mut out = [0u8; 5];
        assert_eq!(s.read(&mut out).unwrap(), 3);
        assert_eq!(out[..3], [2, 3, 4]);
        assert_eq!(s.byte().unwrap(), None);
        assert_eq!(s.skip(1, "short").unwrap_err(), "short");
    }

    /// A snappy copy from 1.2 MB back (past the 1 MiB window) is refused at
    /// any read size, never read from outside the output kept.
    #[test]
    fn a_copy_from_past_the_window_is_refused_at_any_read_size() {
        let literal = 1_200_000usize;
        let mut data = vec![0x80, 0x80, 0x80, 0x01]; // uncompressed length (not checked)
        data.push(63 << 2); // a literal with a 4-byte length - 1
        data.extend_from_slice(&(literal as u32 - 1).to_le_bytes());
        data.extend((0..literal).map(|i| (i % 253) as u8));
        data.push((9 << 2) | 3); // a copy of 10 bytes with a 4-byte offset
        data.extend_from_slice(&(literal as u32).to_le_bytes());
        let len = data.len() as u64;
        let file: Arc<dyn ByteSource> = Arc::new(Bytes::from(data));
        for step in [1usize, 4096, 2 << 20] {
            let raw = RangeRead::new(Arc::clone(&file), 0, len, 1 << 16);
            let mut s = Stream::new(decompress(Compression::SNAPPY, raw).unwrap(), step);
            let mut buf = vec![0u8; step];
            let err = loop {
                match s.read(&mut buf) {
                    Ok(0) => panic!("read to the end at step {step}"),
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            assert_eq!(
                err, "Snappy data: a copy reaches 1200000 bytes back, 1048576 are kept",
                "step {step}"
            );
        }
    }
}
