//! The local sink: a lock beside `sink.path`, a hidden staging directory on
//! the same filesystem, and an atomic swap into place at the end. Nothing
//! that seqwin did not write is ever removed: the lock is opened without
//! following links or truncating, `overwrite` replaces only a directory
//! proven to be a complete seqwin dataset ([`prove_dataset`]), and the lock
//! and any parent directories a run created go again on every exit path.
//!
//! ```text
//!   parent/
//!     .NAME.seqwin.lock                 held (flock) for the whole run, then removed
//!     .NAME.seqwin-staging-PID/         everything is written here …
//!         split=train/part-00000.parquet
//!         _seqwin_log/00000000000000000000.json
//!         _seqwin.json
//!         _SUCCESS
//!     NAME/                             … and swapped into place at the end
//! ```
//!
//! An append builds the whole next version in the staging directory: the
//! new part files, hard links to every file of the current version, the
//! next log entry and manifest; the same swap then publishes it, so a
//! directory reader sees the old version or the new one, never a mix.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::manifest::{log_name, log_version, Manifest, LOG_DIR, MANIFEST, SUCCESS};
use crate::config::SinkMode;
use crate::error::{Error, Result};
use crate::oom::{Cleanup, Removal};
use crate::plan::SinkPlan;

/// The staging directory of a run; removed on drop unless committed.
#[derive(Debug)]
pub struct Staging {
    sink: PathBuf,
    dir: PathBuf,
    committed: bool,
    /// The current version of the dataset an append adds to.
    previous: Option<Manifest>,
    /// The version of the dataset an overwrite replaces.
    replaced: Option<u64>,
    /// Removes `dir` if the process runs out of memory.
    _oom: Cleanup,
    /// Dropped after `dir` is removed: the lock and the parents this run made.
    _claim: Claim,
}

/// What a run holds beside its sink before it has a staging directory: the
/// lock (removed when the run ends) and the sink's parent directories it
/// created (removed again unless the dataset was committed into them). Drop
/// releases both, so every early return of [`Staging::prepare`] cleans up.
#[derive(Debug, Default)]
struct Claim {
    /// The lock file, once this run holds it.
    lock: Option<(PathBuf, File)>,
    /// Directories created for the sink's parent, outermost first.
    created: Vec<PathBuf>,
    /// The same, registered for removal if the process runs out of memory.
    oom: Vec<Cleanup>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Unlink while still holding the lock; it is released when the file closes.
        if let Some((path, _file)) = self.lock.take() {
            let _ = std::fs::remove_file(path);
        }
        // Only empty directories go: after a commit the sink is inside them.
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Creates the missing directories of `dir`, recording each one created in
/// `created` (outermost first), naming the path component that is in the way
/// when one is a file.
fn create_parents(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| std::fs::symlink_metadata(a).is_err())
        .collect();
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => created.push(d.to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return create_dir_all(dir),
        }
    }
    if !dir.is_dir() {
        return create_dir_all(dir);
    }
    Ok(())
}

/// Opens (creating, never truncating) the lock file without following a
/// symbolic link planted at its name.
fn open_lock(sink: &Path, lock_path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO planted at the name must not hang the run.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    }
    let not_a_file = || {
        Error::sink(
            sink,
            format!(
                "the lock file {} is not a regular file; refusing to use it (remove it if no seqwin run is writing this sink)",
                lock_path.display()
            ),
        )
    };
    let file = options.open(lock_path).map_err(|e| {
        let is_link = std::fs::symlink_metadata(lock_path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if is_link {
            Error::sink(
                sink,
                format!(
                    "the lock file {} is a symbolic link; refusing to open it (remove it if no seqwin run is writing this sink)",
                    lock_path.display()
                ),
            )
        } else if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::EISDIR)) {
            not_a_file()
        } else {
            Error::io(lock_path, e)
        }
    })?;
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(not_a_file()),
        Err(e) => Err(Error::io(lock_path, e)),
    }
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

/// What a sink holds before a run writes it.
#[derive(Debug, Default)]
struct Found {
    /// The version of the dataset an overwrite replaces.
    replaced: Option<u64>,
    /// The current manifest of the dataset an append adds to.
    previous: Option<Manifest>,
}

/// Checks that `sink` may be written under `mode`.
fn check_sink_state(sink: &Path, mode: SinkMode) -> Result<Found> {
    let meta = match std::fs::symlink_metadata(sink) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::default()),
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
        return Ok(Found::default());
    }
    match mode {
        SinkMode::Error => Err(Error::sink(
            sink,
            "sink.path is not empty (sink.mode: error); remove it or set sink.mode: overwrite",
        )),
        SinkMode::Overwrite => Ok(Found {
            replaced: Some(prove_dataset(sink, "overwrite")?),
            previous: None,
        }),
        SinkMode::Append => {
            prove_dataset(sink, "append to")?;
            let path = sink.join(MANIFEST);
            let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let previous = serde_json::from_slice(&text).map_err(|e| {
                Error::sink(
                    sink,
                    format!("{MANIFEST} cannot be read by this seqwin version ({e}); refusing to append to it"),
                )
            })?;
            Ok(Found {
                replaced: None,
                previous: Some(previous),
            })
        }
    }
}

/// The manifest of the current version of the dataset at `sink`, read
/// without locking or writing anything (`None` for a missing or empty path).
///
/// # Errors
/// As [`Staging::prepare`] under `append`.
pub fn current_version(sink: &Path) -> Result<Option<Manifest>> {
    check_sink_state(sink, SinkMode::Append).map(|found| found.previous)
}

/// Paths named in messages before "and N more".
const NAMED_PATHS: usize = 5;

/// The part of a manifest that proves what a dataset holds (read leniently,
/// so that a dataset of another seqwin version can still be replaced).
#[derive(serde::Deserialize)]
struct ManifestFiles {
    /// Required: every manifest names its writer.
    #[allow(dead_code)]
    seqwin_version: String,
    /// The dataset's version (0 before versions existed).
    #[serde(default)]
    version: u64,
    partitions: Vec<PartitionFiles>,
}

#[derive(serde::Deserialize)]
struct PartitionFiles {
    #[serde(default)]
    path: String,
    files: Vec<FileName>,
}

#[derive(serde::Deserialize)]
struct FileName {
    name: String,
}

/// Proves that `sink` is a complete seqwin dataset and nothing else, so that
/// replacing it destroys only what seqwin wrote: `_seqwin.json` parses as a
/// manifest, `_SUCCESS` is present, and the tree holds exactly the files the
/// manifest lists (as regular files), the directories leading to them, the
/// manifest, `_SUCCESS` and the version log — no other file, directory or
/// symbolic link. `verb` names what is refused. Returns the dataset's version.
fn prove_dataset(sink: &Path, verb: &str) -> Result<u64> {
    let refuse = |why: String| {
        Err(Error::sink(
            sink,
            format!("sink.path is not a seqwin dataset ({why}); refusing to {verb} it"),
        ))
    };
    let regular = |name: &str| {
        std::fs::symlink_metadata(sink.join(name))
            .map(|m| m.is_file())
            .unwrap_or(false)
    };
    if !regular(MANIFEST) {
        return refuse(format!("no {MANIFEST}"));
    }
    let text = match std::fs::read(sink.join(MANIFEST)) {
        Ok(t) => t,
        Err(e) => return Err(Error::io(sink.join(MANIFEST), e)),
    };
    let listed: ManifestFiles = match serde_json::from_slice(&text) {
        Ok(m) => m,
        Err(e) => return refuse(format!("{MANIFEST} is not a seqwin manifest: {e}")),
    };
    if !regular(SUCCESS) {
        return refuse(format!("no {SUCCESS}"));
    }
    // Every listed file, and every directory on the way to one.
    let mut files = std::collections::BTreeSet::new();
    let mut dirs = std::collections::BTreeSet::new();
    let inside = |name: &str| {
        !name.is_empty()
            && Path::new(name)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    for p in &listed.partitions {
        let names = p.files.iter().map(|f| (f.name.as_str(), true));
        let partition_dir = (!p.path.is_empty()).then_some((p.path.as_str(), false));
        for (name, is_file) in names.chain(partition_dir) {
            if !inside(name) {
                return refuse(format!(
                    "{MANIFEST} lists `{name}`, which is not a path inside the dataset"
                ));
            }
            let rel = Path::new(name);
            let skip = if is_file { 1 } else { 0 };
            for a in rel.ancestors().skip(skip) {
                if !a.as_os_str().is_empty() {
                    dirs.insert(a.to_path_buf());
                }
            }
            if is_file {
                files.insert(rel.to_path_buf());
            }
        }
    }
    let mut foreign = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = sink.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = rel.join(entry.file_name());
            let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            let top = rel.as_os_str().is_empty();
            let in_log = rel == Path::new(LOG_DIR);
            let ours = if kind.is_dir() {
                dirs.contains(&path) || (top && path == Path::new(LOG_DIR))
            } else if kind.is_file() {
                files.contains(&path)
                    || (top && (path == Path::new(MANIFEST) || path == Path::new(SUCCESS)))
                    || (in_log && log_version(&entry.file_name().to_string_lossy()).is_some())
            } else {
                false
            };
            if !ours {
                let suffix = if kind.is_dir() { "/" } else { "" };
                foreign.push(format!("{}{suffix}", path.display()));
            } else if kind.is_dir() {
                stack.push(path);
            } else {
                seen.insert(path);
            }
        }
    }
    if !foreign.is_empty() {
        return refuse(format!(
            "it holds what seqwin did not write: {}",
            name_some(foreign)
        ));
    }
    let missing: Vec<String> = files
        .difference(&seen)
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        return refuse(format!(
            "files listed in {MANIFEST} are missing: {}",
            name_some(missing)
        ));
    }
    Ok(listed.version)
}

/// The first [`NAMED_PATHS`] of `paths` (sorted), and how many more there are.
fn name_some(mut paths: Vec<String>) -> String {
    paths.sort();
    let more = paths.len().saturating_sub(NAMED_PATHS);
    paths.truncate(NAMED_PATHS);
    let mut text = paths.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
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
        let mut claim = Claim::default();
        create_parents(parent, &mut claim.created)?;
        claim.oom = (claim.created.iter())
            .map(|d| Cleanup::register(d, Removal::EmptyDir))
            .collect();
        let lock_path = sibling(&sink, "seqwin.lock");
        let lock = open_lock(&sink, &lock_path)?;
        let busy = || {
            Error::sink(
                &sink,
                "another seqwin run is writing this sink.path right now; try again when it has finished",
            )
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(busy()),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        // The lock file is removed when a run ends; a run that opened it just
        // before must not mistake the unlinked file for the lock.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let held = lock.metadata().map_err(|e| Error::io(&lock_path, e))?;
            let current = std::fs::symlink_metadata(&lock_path)
                .map(|m| (m.dev(), m.ino()))
                .ok();
            if current != Some((held.dev(), held.ino())) {
                return Err(busy());
            }
        }
        claim.oom.push(Cleanup::register(&lock_path, Removal::File));
        claim.lock = Some((lock_path, lock));
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
        let Found { previous, replaced } = check_sink_state(&sink, plan.mode)?;
        let dir = sibling(&sink, &format!("seqwin-staging-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Staging {
            _oom: Cleanup::register(&dir, Removal::Tree),
            sink,
            dir,
            committed: false,
            previous,
            replaced,
            _claim: claim,
        })
    }

    /// The current version of the dataset an append adds to (`None` for
    /// other modes and for an append to a missing or empty path).
    pub fn previous(&self) -> Option<&Manifest> {
        self.previous.as_ref()
    }

    /// The version number of the dataset this run writes: one more than
    /// the version it appends to or replaces, 0 for a new dataset.
    pub fn next_version(&self) -> u64 {
        let current = self.previous.as_ref().map(|m| m.version).or(self.replaced);
        current.map_or(0, |v| v + 1)
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
        if self.previous.is_some() {
            link_tree(&self.sink, &self.dir)?;
        }
        let text = serde_json::to_string_pretty(manifest)
            .map_err(|e| Error::Internal(e.to_string()))?
            + "\n";
        let log = self.dir.join(log_name(manifest.version));
        create_dir_all(&self.dir.join(LOG_DIR))?;
        std::fs::write(&log, &text).map_err(|e| Error::io(&log, e))?;
        let mpath = self.dir.join(MANIFEST);
        std::fs::write(&mpath, text).map_err(|e| Error::io(&mpath, e))?;
        let spath = self.dir.join(SUCCESS);
        File::create(&spath).map_err(|e| Error::io(&spath, e))?;
        let now = check_sink_state(&self.sink, manifest.mode)?.previous;
        if now.as_ref().map(|m| m.version) != self.previous.as_ref().map(|m| m.version) {
            return Err(Error::sink(
                &self.sink,
                "the dataset changed while this append ran (another writer ignored the lock); nothing was changed",
            ));
        }
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
        // `_claim` drops next: the lock file and the parents this run created.
    }
}

/// Hard-links every file of the dataset `from` except its manifest and
/// `_SUCCESS` into `to`, at the same relative paths: the next version shares
/// the current one's files without copying them (copies them on a
/// filesystem that refuses hard links).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from).min_depth(1) {
        let entry = entry.map_err(|e| Error::io(from, std::io::Error::other(e.to_string())))?;
        let rel = entry.path().strip_prefix(from).expect("below from");
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            create_dir_all(&target)?;
        } else if rel != Path::new(MANIFEST) && rel != Path::new(SUCCESS) {
            // A filesystem without hard links gets copies (slower, same result).
            if std::fs::hard_link(entry.path(), &target).is_err() {
                std::fs::copy(entry.path(), &target).map_err(|e| Error::io(&target, e))?;
            }
        }
    }
    Ok(())
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
