//! Running out of memory without leaving debris: the `seqwin` binary's
//! allocator ([`ExitOnOom`]) turns a failed allocation — an address-space
//! limit (`ulimit -v`, a container, a cluster's memory cap) or an exhausted
//! machine — into one message and exit code 1, after removing what the run
//! registered with [`Cleanup`]: its staging directory, its lock file and the
//! sink parents it created. Without it the process aborts (SIGABRT) and
//! leaves them behind.
//!
//! Allocations that the input sizes and that seqwin makes itself are checked
//! first ([`crate::window`] reserves window buffers fallibly and fails with
//! `Error::OutOfMemory` through the ordinary error path); this is the net
//! under everything else (the Parquet decoder and encoder, Arrow buffers).
//!
//! ```text
//!   alloc fails ──▶ first thread: message ─▶ remove registered paths ─▶ _exit(1)
//!                   other threads: wait (the first one ends the process)
//!                   the same thread again (cleanup itself failed): _exit(1)
//! ```
//!
//! Object-store sinks register nothing: their staging objects and multipart
//! uploads are left to the store's lifecycle rules and removed by the next
//! run into the same sink.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// The system allocator, exiting cleanly when an allocation fails. The
/// `seqwin` binary installs it (`#[global_allocator]`); a library user may.
pub struct ExitOnOom;

// SAFETY: every call is forwarded to `System` unchanged; only a null result
// is intercepted, and `exit` never returns.
unsafe impl GlobalAlloc for ExitOnOom {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if p.is_null() {
            exit(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            exit(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            exit(new_size);
        }
        p
    }
}

/// How a registered path is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// A directory and everything in it (staging).
    Tree,
    /// A file (the lock).
    File,
    /// A directory, only if empty (a parent the run created).
    EmptyDir,
}

/// Paths to remove if the process runs out of memory, in registration order
/// (removed in reverse).
static REGISTERED: Mutex<Vec<(u64, PathBuf, Removal)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A registered path; dropping it unregisters (the owner removes or keeps the
/// path itself on every ordinary exit path).
#[derive(Debug)]
pub struct Cleanup(u64);

impl Cleanup {
    /// Registers `path` for removal on an out-of-memory exit.
    pub fn register(path: &Path, how: Removal) -> Cleanup {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut list) = REGISTERED.lock() {
            list.push((id, path.to_path_buf(), how));
        }
        Cleanup(id)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(mut list) = REGISTERED.lock() {
            list.retain(|(id, _, _)| *id != self.0);
        }
    }
}

/// Whether a thread is already handling an allocation failure.
static HANDLING: AtomicBool = AtomicBool::new(false);
/// The kernel thread id of that thread.
static HANDLER: AtomicI64 = AtomicI64::new(0);

/// Reports a failed allocation of `size` bytes, removes the registered
/// paths and ends the process with exit code 1.
fn exit(size: usize) -> ! {
    // SAFETY: gettid has no preconditions.
    let me = i64::from(unsafe { libc::gettid() });
    if HANDLING.swap(true, Ordering::SeqCst) {
        if HANDLER.load(Ordering::SeqCst) == me {
            // Cleanup itself could not allocate: leave at once.
            // SAFETY: _exit has no preconditions.
            unsafe { libc::_exit(1) };
        }
        // Another thread is cleaning up and will end the process.
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    }
    HANDLER.store(me, Ordering::SeqCst);
    let mut msg = StackText::default();
    let _ = std::fmt::write(
        &mut msg,
        format_args!(
            "seqwin: error: out of memory: an allocation of {size} bytes failed \
             (an address-space limit such as `ulimit -v`, or the machine's memory); \
             try fewer --threads or smaller windows.seq_len or sink.row_group_rows. \
             Nothing was committed: the run's staging directory and lock are removed, \
             any previous dataset is intact.\n"
        ),
    );
    // SAFETY: the buffer is valid for its length; fd 2 may be closed (ignored).
    unsafe { libc::write(2, msg.buf.as_ptr().cast(), msg.len) };
    if let Ok(list) = REGISTERED.try_lock() {
        for (_, path, how) in list.iter().rev() {
            let _ = match how {
                // Writers on other threads may still add files: retry.
                Removal::Tree => (0..3)
                    .map(|_| std::fs::remove_dir_all(path))
                    .find(Result::is_ok)
                    .unwrap_or(Ok(())),
                Removal::File => std::fs::remove_file(path),
                Removal::EmptyDir => std::fs::remove_dir(path),
            };
        }
    }
    // SAFETY: _exit has no preconditions; no destructor may run now.
    unsafe { libc::_exit(1) }
}

/// A message formatted without allocating (truncated at 512 bytes).
struct StackText {
    buf: [u8; 512],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
