//! Object stores: `s3://`, `gs://` and `az://` paths through the
//! `object_store` crate.
//!
//! The pipeline itself is synchronous (rayon workers); every store call is
//! driven to completion on one shared tokio runtime with [`block_on`]. Reads
//! are range requests (a footer suffix, then the column chunks of one row
//! group); writes are multipart uploads in [`CHUNK_BYTES`] parts with at most
//! [`PARTS_IN_FLIGHT`] parts in flight per file, so memory stays flat in the
//! size of the data.
//!
//! `file://` URLs are plain local paths and never reach this module.
mod error;
mod io;
mod open;

pub use error::{describe, io_error, one_line, StoreError};
pub use io::{delete_all, read_footer, Blocks, Ranges, Upload, BLOCKS_KEPT, BLOCK_BYTES};

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

/// Multipart upload part size (S3 needs at least 5 MiB for all but the last part).
pub const CHUNK_BYTES: usize = 8 << 20;

/// Parts uploading concurrently per file before a write waits.
pub const PARTS_IN_FLIGHT: usize = 2;

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("seqwin-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    })
}

/// Runs a future to completion on the shared I/O runtime (from any
/// non-runtime thread: the coordinator or a rayon worker).
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// An opened object store location: the store, and the key prefix the URL names.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The URL as given (normalized scheme, no trailing slash).
    pub url: String,
    /// `scheme://bucket`.
    base: String,
    /// The store client.
    pub store: Arc<dyn ObjectStore>,
    /// The key the URL names (may be empty: the whole bucket).
    pub prefix: Key,
}

impl Remote {
    /// The URL of a key, for messages and the manifest.
    pub fn display(&self, key: &Key) -> PathBuf {
        PathBuf::from(format!("{}/{}", self.base, key.as_ref()))
    }

    /// `prefix/rel`, keeping the key bytes as they are (hive escapes included).
    ///
    /// # Errors
    /// A message when `rel` makes an invalid key (empty or `.`/`..` segments).
    pub fn child(&self, rel: &str) -> std::result::Result<Key, StoreError> {
        let mut k = self.prefix.as_ref().to_string();
        if !k.is_empty() {
            k.push('/');
        }
        k.push_str(rel);
        Key::parse(&k).map_err(|source| StoreError::Key { key: k, source })
    }

    /// Every object under `prefix` (recursively), sorted by key.
    ///
    /// # Errors
    /// The store's error (missing bucket, no permission, unreachable).
    pub fn list(&self, prefix: &Key) -> std::result::Result<Vec<ObjectMeta>, object_store::Error> {
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        let mut out: Vec<ObjectMeta> = block_on(self.store.list(prefix).try_collect())?;
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    /// The metadata of one object, `None` if it does not exist.
    ///
    /// # Errors
    /// The store's error other than "not found".
    pub fn head(&self, key: &Key) -> std::result::Result<Option<ObjectMeta>, object_store::Error> {
        match block_on(self.store.head(key)) {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a small object in one request.
    ///
    /// # Errors
    /// The store's error.
    pub fn put(&self, key: &Key, data: Vec<u8>) -> std::result::Result<(), object_store::Error> {
        block_on(self.store.put(key, PutPayload::from(data))).map(|_| ())
    }

    /// Deletes objects (missing ones are not an error).
    ///
    /// # Errors
    /// The first error of the store other than "not found".
    pub fn delete(&self, keys: &[Key]) -> std::result::Result<(), object_store::Error> {
        block_on(delete_all(self.store.as_ref(), keys.to_vec()))
    }
}
