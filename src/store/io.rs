//! Reading and writing objects: Parquet footers by suffix range, row
//! groups by fetched column-chunk ranges, large column chunks by blocks read
//! on demand, data files by multipart upload.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use parquet::file::reader::{ChunkReader, Length};

use super::{block_on, io_error, runtime, StoreError, CHUNK_BYTES, PARTS_IN_FLIGHT};

/// Deletes objects with the store's bulk requests (S3 `DeleteObjects`, up to
/// 1000 keys a request); missing ones are not an error.
///
/// # Errors
/// The first error of the store other than "not found".
pub async fn delete_all(
    store: &dyn ObjectStore,
    keys: Vec<Key>,
) -> std::result::Result<(), object_store::Error> {
    let mut results = store.delete_stream(Box::pin(futures_util::stream::iter(
        keys.into_iter().map(Ok),
    )));
    while let Some(r) = results.next().await {
        match r {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a Parquet footer with range requests: a 64 KiB suffix first, then
/// exactly the bytes the footer says it needs.
///
/// # Errors
/// A message naming what failed (request or decoding).
pub fn read_footer(
    store: &dyn ObjectStore,
    key: &Key,
    size: u64,
) -> std::result::Result<parquet::file::metadata::ParquetMetaData, StoreError> {
    use parquet::errors::ParquetError;
    use parquet::file::metadata::ParquetMetaDataReader;
    let fetch = |n: u64| -> std::result::Result<Bytes, StoreError> {
        let n = n.min(size);
        block_on(store.get_range(key, size - n..size)).map_err(StoreError::Request)
    };
    let mut bytes = fetch(64 << 10)?;
    let mut reader = ParquetMetaDataReader::new();
    loop {
        if let Some(meta) = crate::footer::metadata_in_tail(&bytes, size) {
            crate::footer::check_metadata(meta)
                .map_err(|e| StoreError::Footer(ParquetError::External(Box::new(e))))?;
        }
        match reader.try_parse_sized(&bytes, size) {
            Ok(()) => break,
            Err(ParquetError::NeedMoreData(needed)) if (needed as u64) > bytes.len() as u64 => {
                bytes = fetch(needed as u64)?;
            }
            Err(e) => return Err(StoreError::Footer(e)),
        }
    }
    reader.finish().map_err(StoreError::Footer)
}

/// Byte ranges of one object fetched ahead of decoding, served to the
/// Parquet reader as if they were the file (any read outside them is an error).
#[derive(Debug, Clone)]
pub struct Ranges {
    size: u64,
    /// `(offset, bytes)`, sorted and non-overlapping.
    parts: Vec<(u64, Bytes)>,
}

impl Ranges {
    /// Fetches `ranges` of `key` (adjacent ones are coalesced by the store).
    ///
    /// # Errors
    /// The store's error.
    pub fn fetch(
        store: &dyn ObjectStore,
        key: &Key,
        size: u64,
        mut ranges: Vec<std::ops::Range<u64>>,
    ) -> std::result::Result<Ranges, object_store::Error> {
        ranges.sort_by_key(|r| r.start);
        // Merge overlapping ranges so that every read falls inside one part.
        let mut merged: Vec<std::ops::Range<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let data = block_on(store.get_ranges(key, &merged))?;
        Ok(Ranges {
            size,
            parts: merged.iter().map(|r| r.start).zip(data).collect(),
        })
    }

    /// Byte ranges already read (from a local file, say): `(offset, bytes)`,
    /// non-overlapping, in any order.
    pub fn from_parts(size: u64, mut parts: Vec<(u64, Bytes)>) -> Ranges {
        parts.sort_by_key(|p| p.0);
        Ranges { size, parts }
    }

    fn slice(&self, start: u64, len: Option<usize>) -> parquet::errors::Result<Bytes> {
        let i = self.parts.partition_point(|(off, _)| *off <= start);
        if i > 0 {
            let (off, bytes) = &self.parts[i - 1];
            let from = (start - off) as usize;
            let to = len.map_or(bytes.len(), |l| from + l);
            if to <= bytes.len() {
                return Ok(bytes.slice(from..to));
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "read at offset {start} outside the fetched column chunks"
        )))
    }
}

/// Blocks of an object read on demand ([`Blocks`]): 4 MiB, 250 GETs a GB.
pub const BLOCK_BYTES: u64 = 4 << 20;

/// Blocks a [`Blocks`] keeps, the most recently used.
pub const BLOCKS_KEPT: usize = 4;

/// An object read on demand in aligned blocks of [`BLOCK_BYTES`], the last
/// [`BLOCKS_KEPT`] used kept: a column chunk too large to fetch whole (one
/// long document) is read as streams at a few places at once (its levels
/// and its values) for one GET per block and bounded memory.
pub struct Blocks {
    store: Arc<dyn ObjectStore>,
    key: Key,
    size: u64,
    kept: Mutex<VecDeque<(u64, Bytes)>>,
}

impl Blocks {
    /// Object `key` of `size` bytes in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, key: Key, size: u64) -> Blocks {
        Blocks {
            store,
            key,
            size,
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// Block `k`, fetched unless kept.
    fn block(&self, k: u64) -> std::result::Result<Bytes, object_store::Error> {
        let kept = |q: &mut VecDeque<(u64, Bytes)>| {
            let i = q.iter().position(|(b, _)| *b == k)?;
            let hit = q.remove(i)?;
            q.push_back(hit.clone());
            Some(hit.1)
        };
        if let Some(b) = kept(&mut self.kept.lock().expect("blocks lock")) {
            return Ok(b);
        }
        let start = k * BLOCK_BYTES;
        let end = (start + BLOCK_BYTES).min(self.size);
        let bytes = block_on(self.store.get_range(&self.key, start..end))?;
        if bytes.len() as u64 != end - start {
            return Err(object_store::Error::Generic {
                store: "seqwin",
                source: format!(
                    "a read of {} bytes at offset {start} returned {} (the object changed?)",
                    end - start,
                    bytes.len()
                )
                .into(),
            });
        }
        let mut q = self.kept.lock().expect("blocks lock");
        q.push_back((k, bytes.clone()));
        while q.len() > BLOCKS_KEPT {
            q.pop_front();
        }
        Ok(bytes)
    }

    /// Bytes `[start, start + len)` of the object.
    ///
    /// # Errors
    /// The store's error; a range past the object's end is an error.
    pub fn get(&self, start: u64, len: usize) -> std::result::Result<Bytes, String> {
        let end = start + len as u64;
        if end > self.size {
            return Err(format!(
                "read of {len} bytes at offset {start} past the object's {} bytes",
                self.size
            ));
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        let fetch = |k| self.block(k).map_err(|e| super::describe(&e));
        let (first, last) = (start / BLOCK_BYTES, (end - 1) / BLOCK_BYTES);
        if first == last {
            // A copy: a slice would keep the whole block alive after it leaves the cache.
            let at = (start - first * BLOCK_BYTES) as usize;
            return Ok(Bytes::copy_from_slice(&fetch(first)?[at..at + len]));
        }
        let mut out = Vec::with_capacity(len);
        for k in first..=last {
            let block = fetch(k)?;
            let lo = start.max(k * BLOCK_BYTES) - k * BLOCK_BYTES;
            let hi = end.min((k + 1) * BLOCK_BYTES) - k * BLOCK_BYTES;
            out.extend_from_slice(&block[lo as usize..hi as usize]);
        }
        Ok(out.into())
    }
}

impl Length for Ranges {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Ranges {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}

/// A `Write` that streams into a multipart upload: parts of [`CHUNK_BYTES`]
/// go out as they fill, at most [`PARTS_IN_FLIGHT`] at a time. Dropped
/// without [`Upload::finish`], the upload is aborted.
pub struct Upload {
    inner: Option<WriteMultipart>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").finish_non_exhaustive()
    }
}

impl Upload {
    /// Starts a multipart upload to `key`.
    ///
    /// # Errors
    /// The store's error.
    pub fn start(store: &dyn ObjectStore, key: &Key) -> std::io::Result<Upload> {
        let upload = block_on(store.put_multipart(key)).map_err(io_error)?;
        Ok(Upload {
            inner: Some(WriteMultipart::new_with_chunk_size(upload, CHUNK_BYTES)),
        })
    }

    /// Uploads the last part and completes the upload.
    ///
    /// # Errors
    /// The store's error (the upload is aborted).
    pub fn finish(&mut self) -> std::io::Result<()> {
        match self.inner.take() {
            Some(w) => block_on(w.finish()).map(|_| ()).map_err(io_error),
            None => Ok(()),
        }
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let w = self
            .inner
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?;
        block_on(w.wait_for_capacity(PARTS_IN_FLIGHT)).map_err(io_error)?;
        // `write` spawns part uploads onto the runtime.
        let _guard = runtime().enter();
        w.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(w) = self.inner.take() {
            let _ = block_on(w.abort());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_serve_only_what_was_fetched() {
        let r = Ranges {
            size: 100,
            parts: vec![
                (10, Bytes::from_static(b"0123456789")),
                (40, Bytes::from_static(b"abcdef")),
            ],
        };
        assert_eq!(&r.get_bytes(12, 3).unwrap()[..], b"234");
        assert_eq!(&r.get_bytes(40, 6).unwrap()[..], b"abcdef");
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut r.get_read(43).unwrap(), &mut rest).unwrap();
        assert_eq!(rest, b"def");
        assert!(r.get_bytes(18, 5).is_err()); // runs past the first range
        assert!(r.get_bytes(5, 2).is_err()); // before any range
        assert!(r.get_bytes(30, 1).is_err()); // between ranges
        assert_eq!(r.len(), 100);
    }

    /// Reads within a block, across blocks and at the end give the object's
    /// bytes; the blocks are kept in the order of their last use.
    #[test]
    fn blocks_serve_any_range_and_keep_the_last_used() {
        use object_store::memory::InMemory;
        use object_store::PutPayload;
        let size = 2 * BLOCK_BYTES + 1000;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let store = Arc::new(InMemory::new());
        let key = Key::from("a.parquet");
        block_on(store.put(&key, PutPayload::from(data.clone()))).unwrap();
        let blocks = Blocks::new(store, key, size);
        let b = BLOCK_BYTES as usize;
        for (start, len) in [
            (0, 10),
            (b - 5, 10),
            (b - 5, b + 10),
            (size as usize - 7, 7),
            (3, 0),
        ] {
            let got = blocks.get(start as u64, len).unwrap();
            assert!(got[..] == data[start..start + len], "{start}+{len}");
        }
        assert_eq!(
            blocks.get(size - 3, 4).unwrap_err(),
            format!(
                "read of 4 bytes at offset {} past the object's {size} bytes",
                size - 3
            )
        );
        let kept: Vec<u64> = blocks
            .kept
            .lock()
            .unwrap()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        // Last used last: 0, 1 and 2 by the read across all three, then 2 again.
        assert_eq!(kept, [0, 1, 2]);
    }
}
