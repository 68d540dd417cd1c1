//! Reading Thrift compact protocol values from bytes in memory: the parquet
//! crate's own decoder is private, and the `thrift` crate would add five
//! crates. Used to pre-check a file's footer ([`crate::footer`]) and to read
//! page headers ([`crate::source`]).

/// Skips nest at most this deep (the parquet crate's own limit is 64).
const MAX_SKIP_DEPTH: usize = 64;

/// Bytes that cannot be read as Thrift compact encoding (or end too soon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

pub(crate) type Walk<T> = Result<T, Malformed>;

/// Thrift compact protocol types (the low nibble of a field header).
const STOP: u8 = 0;
pub(crate) const BOOL_TRUE: u8 = 1;
pub(crate) const BOOL_FALSE: u8 = 2;
pub(crate) const BYTE: u8 = 3;
pub(crate) const I16: u8 = 4;
pub(crate) const I32: u8 = 5;
pub(crate) const I64: u8 = 6;
pub(crate) const DOUBLE: u8 = 7;
pub(crate) const BINARY: u8 = 8;
pub(crate) const LIST: u8 = 9;
pub(crate) const SET: u8 = 10;
pub(crate) const MAP: u8 = 11;
pub(crate) const STRUCT: u8 = 12;

/// A reader of Thrift compact values from `buf`, at `pos`.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub(crate) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn byte(&mut self) -> Walk<u8> {
        let b = *self.buf.get(self.pos).ok_or(Malformed)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize) -> Walk<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Malformed)?;
        let s = self.buf.get(self.pos..end).ok_or(Malformed)?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn varint(&mut self) -> Walk<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed)
    }

    pub(crate) fn zigzag(&mut self) -> Walk<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    pub(crate) fn binary(&mut self) -> Walk<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
        self.take(n)
    }

    /// The next field header of a struct, `None` at its end.
    pub(crate) fn field(&mut self, last: &mut i16) -> Walk<Option<(i16, u8)>> {
        let b = self.byte()?;
        let ty = b & 0x0f;
        if ty == STOP {
            return Ok(None);
        }
        let delta = i16::from(b >> 4);
        *last = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| Malformed)?
        } else {
            last.checked_add(delta).ok_or(Malformed)?
        };
        Ok(Some((*last, ty)))
    }

    pub(crate) fn list_header(&mut self) -> Walk<(usize, u8)> {
        let b = self.byte()?;
        let size = match b >> 4 {
            15 => usize::try_from(self.varint()?).map_err(|_| Malformed)?,
            n => usize::from(n),
        };
        Ok((size, b & 0x0f))
    }

    /// Skips one value of type `ty` (iteratively for elements, so a huge
    /// claimed size only runs until the bytes end).
    pub(crate) fn skip(&mut self, ty: u8, depth: usize) -> Walk<()> {
        if depth > MAX_SKIP_DEPTH {
            return Err(Malformed);
        }
        match ty {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.take(1).map(drop),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.take(8).map(drop),
            BINARY => self.binary().map(drop),
            LIST | SET => {
                let (size, elem) = self.list_header()?;
                for _ in 0..size {
                    // Booleans in a list take one byte each.
                    if matches!(elem, BOOL_TRUE | BOOL_FALSE) {
                        self.take(1)?;
                    } else {
                        self.skip(elem, depth + 1)?;
                    }
                }
                Ok(())
            }
            MAP => {
                let size = self.varint()?;
                if size == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                for _ in 0..size {
                    self.skip(kv >> 4, depth + 1)?;
                    self.skip(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => {
                let mut last = 0i16;
                while let Some((_, ty)) = self.field(&mut last)? {
                    self.skip(ty, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(Malformed),
        }
    }
}
