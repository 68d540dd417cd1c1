//! Buffers the Python readers reuse: the bytes read from local files and
//! the value buffers of decoded token lists, lent to Python as Arrow
//! buffers and given back when Python drops them.

use std::sync::{Arc, Mutex, Weak};

use arrow_buffer::{ArrowNativeType, ToByteSlice};
use bytes::Bytes;

/// Freed buffers found again for reuse per reader: the bytes read from
/// local files and the value buffers of the token lists, handed to Python.
/// A decoded block is several MiB; fresh memory for each one costs a page
/// fault per 4 KiB page and the allocator's trimming (a fifth to a third of
/// the decoding CPU time, measured), while a buffer taken from here is
/// already mapped.
///
/// A buffer comes back when its last user drops it (the decoder, or Python
/// dropping the numpy arrays of a block) and is taken before any new one is
/// allocated, so the buffers a reader owns never outnumber the most it had
/// in use at once (at most `POOL_BUFFERS` are kept idle per type); they are
/// freed with the reader.
#[derive(Default)]
pub(crate) struct Pools {
    pub(crate) chunks: Arc<Pool<u8>>,
    pub(crate) int32: Arc<Pool<i32>>,
    pub(crate) int64: Arc<Pool<i64>>,
}

/// Idle buffers kept per type of [`Pools`]: more than a loader of `input`
/// and `target` holds at once (per column, the two blocks a batch spans and
/// the one being decoded).
const POOL_BUFFERS: usize = 8;

/// Idle buffers of one element type.
pub(crate) struct Pool<T> {
    idle: Mutex<Vec<Vec<T>>>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
        }
    }
}

impl<T: ArrowNativeType> Pool<T> {
    /// An empty buffer with room for `capacity` items: an idle one if any.
    pub(crate) fn take(&self, capacity: usize) -> Vec<T> {
        let mut v = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_default();
        v.clear();
        v.reserve(capacity);
        v
    }

    /// `v` as bytes that return it to this pool when their last user drops them.
    pub(crate) fn lend(self: &Arc<Self>, v: Vec<T>) -> Bytes {
        Bytes::from_owner(Lent {
            vec: v,
            pool: Arc::downgrade(self),
        })
    }
}

/// A buffer lent out by a [`Pool`]; dropping it gives it back.
struct Lent<T> {
    vec: Vec<T>,
    pool: Weak<Pool<T>>,
}

impl<T: ArrowNativeType> AsRef<[u8]> for Lent<T> {
    fn as_ref(&self) -> &[u8] {
        self.vec.to_byte_slice()
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            if let Ok(mut idle) = pool.idle.lock() {
                if idle.len() < POOL_BUFFERS {
                    idle.push(std::mem::take(&mut self.vec));
                }
            }
        }
    }
}
