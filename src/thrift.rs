//! Reading Thrift compact protocol values from bytes in memory: the parquet
//! crate's own decoder is private, and the `thrift` crate would add five
//! crates. Used to pre-check a file's footer ([`crate::footer`]) and to read
//! page headers ([`crate::source`]); its varints (ULEB128, zigzag) are also
//! those of the run headers and DELTA_BINARY_PACKED headers inside pages
//! ([`crate::source::list_page`]).

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

    /// The bytes left, without reading them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
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
                // Every element takes at least one byte: a larger size is a lie.
                if size > self.left() {
                    return Err(Malformed);
                }
                for _ in 0..size {
                    self.element(elem, depth)?;
                }
                Ok(())
            }
            MAP => {
                let size = self.varint()?;
                if size == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                if size > self.left() as u64 {
                    return Err(Malformed);
                }
                for _ in 0..size {
                    self.element(kv >> 4, depth)?;
                    self.element(kv & 0x0f, depth)?;
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

    /// Skips an element of a list, set or map: a boolean takes one byte there.
    fn element(&mut self, ty: u8, depth: usize) -> Walk<()> {
        if matches!(ty, BOOL_TRUE | BOOL_FALSE) {
            self.take(1).map(drop)
        } else {
            self.skip(ty, depth + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A struct holding a map of two bool → bool entries (one byte each in
    /// a map), then an i32 field; and a map claiming 2^63 entries.
    #[test]
    fn maps_and_lists_of_booleans_skip_one_byte_an_element() {
        let bytes = [0x1b, 0x02, 0x11, 0x01, 0x02, 0x02, 0x01, 0x15, 0x0e, 0x00];
        let mut r = Reader::new(&bytes);
        let mut last = 0;
        assert_eq!(r.field(&mut last), Ok(Some((1, MAP))));
        r.skip(MAP, 0).unwrap();
        assert_eq!(r.field(&mut last), Ok(Some((2, I32))));
        assert_eq!(r.zigzag(), Ok(7));
        assert_eq!(r.field(&mut last), Ok(None));
        let huge = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x11, 0x01,
        ];
        assert_eq!(Reader::new(&huge).skip(MAP, 0), Err(Malformed));
        let list = [0xf1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01];
        assert_eq!(Reader::new(&list).skip(LIST, 0), Err(Malformed));
    }
}
