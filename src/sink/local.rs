//! The local sink: a lock beside `sink.path`, a hidden staging directory on
//! the same filesystem, and an atomic swap into place at the end.
//!
//! ```text
//!   parent/
//!     .NAME.seqwin.lock                 held (flock) for the whole run, then removed
//!     .NAME.seqwin-staging-PID/         everything is written here …
//!         split=train/part-00000.parquet
//!         _seqwin.json
//!         _SUCCESS
//!     NAME/                             … and swapped into place at the end
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use super::manifest::{Manifest, MANIFEST, SUCCESS};
use crate::config::SinkMode;
use crate::error::{Error, Result};
use crate::plan::SinkPlan;

/// The staging directory of a run; removed on drop unless committed.
#[derive(Debug)]
pub struct Staging {
    sink: PathBuf,
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: File,
    committed: bool,
}

fn sibling(sink: &Path, suffix: &str) -> PathBuf {
    let parent = sink
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = sink
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent.join(format!(".{name}.{suffix}"))
}

/// `std::fs::create_dir_all`, naming the path component that is in the way
/// when one is a file.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| match dir.ancestors().find(|a| a.is_file()) {
        Some(blocker) => Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!(
                    "cannot create the directory: {} is a file, not a directory",
                    blocker.display()
                ),
            ),
        ),
        None => Error::io(dir, e),
    })
}

/// Checks that `sink` may be written under `mode`.
fn check_sink_state(sink: &Path, mode: SinkMode) -> Result<()> {
    let meta = match std::fs::symlink_metadata(sink) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(sink, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::sink(
            sink,
            "sink.path is a symbolic link; refusing to write through it",
        ));
    }
    if !meta.is_dir() {
        return Err(Error::sink(sink, "sink.path exists and is not a directory"));
    }
    let mut entries = std::fs::read_dir(sink).map_err(|e| Error::io(sink, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    match mode {
        SinkMode::Error => Err(Error::sink(
            sink,
            "sink.path is not empty (sink.mode: error); remove it or set sink.mode: overwrite",
        )),
        SinkMode::Overwrite => {
            let manifest = std::fs::symlink_metadata(sink.join(MANIFEST));
            if manifest.map(|m| m.is_file()).unwrap_or(false) {
                Ok(())
            } else {
                Err(Error::sink(
                    sink,
                    format!("sink.path is not a seqwin dataset (no {MANIFEST}); refusing to overwrite it"),
                ))
            }
        }
    }
}

impl Staging {
    /// Locks the sink, removes staging directories left by killed runs,
    /// checks the sink against `mode` and creates a fresh staging directory.
    ///
    /// # Errors
    /// [`Error::Sink`] when another run holds the sink or the sink may not be
    /// written; [`Error::Io`] when the parent cannot be created.
    pub fn prepare(plan: &SinkPlan, sink: &Path) -> Result<Staging> {
        let sink = sink.to_path_buf();
        if sink.file_name().is_none() {
            return Err(Error::sink(&sink, "sink.path must name a directory"));
        }
        let parent = sink
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_dir_all(parent)?;
        let lock_path = sibling(&sink, "seqwin.lock");
        let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::sink(
                    &sink,
                    "another seqwin run is writing this sink.path right now; try again when it has finished",
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        // The lock file is removed when a run ends; a run that opened it just
        // before must not mistake the unlinked file for the lock.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let held = lock.metadata().map_err(|e| Error::io(&lock_path, e))?;
            let current = std::fs::metadata(&lock_path)
                .map(|m| (m.dev(), m.ino()))
                .ok();
            if current != Some((held.dev(), held.ino())) {
                return Err(Error::sink(
                    &sink,
                    "another seqwin run is writing this sink.path right now; try again when it has finished",
                ));
            }
        }
        let name = sink
            .file_name()
            .expect("checked")
            .to_string_lossy()
            .into_owned();
        let stale_prefix = format!(".{name}.seqwin-staging-");
        if let Ok(entries) = std::fs::read_dir(parent) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&stale_prefix) {
                    let p = e.path();
                    std::fs::remove_dir_all(&p).map_err(|err| Error::io(&p, err))?;
                }
            }
        }
        check_sink_state(&sink, plan.mode)?;
        let dir = sibling(&sink, &format!("seqwin-staging-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Staging {
            sink,
            dir,
            lock_path,
            _lock: lock,
            committed: false,
        })
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the manifest and `_SUCCESS`, then swaps the staging directory
    /// into place (replacing a previous dataset atomically on Linux).
    ///
    /// # Errors
    /// [`Error::Io`] on write or rename failures; [`Error::Sink`] if the sink
    /// changed under the run.
    pub fn commit(mut self, manifest: &Manifest) -> Result<()> {
        let mpath = self.dir.join(MANIFEST);
        let text =
            serde_json::to_string_pretty(manifest).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(&mpath, text + "\n").map_err(|e| Error::io(&mpath, e))?;
        let spath = self.dir.join(SUCCESS);
        File::create(&spath).map_err(|e| Error::io(&spath, e))?;
        check_sink_state(&self.sink, manifest.mode)?;
        let replace = std::fs::read_dir(&self.sink)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if replace {
            exchange(&self.dir, &self.sink)?;
            // The old dataset now sits at the staging path; Drop removes it.
        } else {
            if self.sink.exists() {
                std::fs::remove_dir(&self.sink).map_err(|e| Error::io(&self.sink, e))?;
            }
            std::fs::rename(&self.dir, &self.sink).map_err(|e| Error::io(&self.sink, e))?;
            self.committed = true;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        // Unlink while still holding the lock; it is released when `_lock` drops.
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Atomically swaps two directories (Linux `renameat2(RENAME_EXCHANGE)`);
/// elsewhere falls back to two renames.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let ca =
            CString::new(a.as_os_str().as_bytes()).map_err(|e| Error::Internal(e.to_string()))?;
        let cb =
            CString::new(b.as_os_str().as_bytes()).map_err(|e| Error::Internal(e.to_string()))?;
        // SAFETY: both are valid NUL-terminated paths; the call only reads them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) {
            return Err(Error::io(b, err));
        }
    }
    let old = a.with_extension("old");
    std::fs::rename(b, &old).map_err(|e| Error::io(b, e))?;
    std::fs::rename(a, b).map_err(|e| Error::io(b, e))?;
    std::fs::rename(&old, a).map_err(|e| Error::io(a, e))?;
    Ok(())
}
