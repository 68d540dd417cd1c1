//! The commit protocol for object store sinks, which have no rename:
//!
//! 1. list the prefix; refuse it under `mode: error` if it holds any object,
//!    under `overwrite` unless it holds a seqwin dataset (`_seqwin.json`) or
//!    the `_seqwin.writing` marker of an interrupted run;
//! 2. write the marker `_seqwin.writing`, delete an old `_SUCCESS`;
//! 3. upload the data files (multipart), named so that none replaces an
//!    object of the old dataset;
//! 4. write the manifest, then `_SUCCESS`;
//! 5. delete the old dataset's objects and the marker.
//!
//! A run that fails removes what it wrote (where the store still answers),
//! puts back the old `_SUCCESS` if the old manifest is still in place, and
//! never writes `_SUCCESS`. Every run writes its manifest to the version log
//! (`_seqwin_log/N.json`) before `_seqwin.json`; `overwrite` numbers its
//! version after the newest one it replaces and deletes the old log entries
//! with the old objects in step 5 (one left behind by a crash is older than
//! the new version, so it is never taken for the current one).
//!
//! `append` leaves the current version alone: no marker, `_SUCCESS` stays;
//! data files are uploaded under names tagged with this run
//! (`part-00003-<tag>.parquet`, never an existing or a concurrent run's
//! key); the commit is the conditional creation (`PutMode::Create`) of the
//! next log entry, so of two concurrent appends exactly one commits and the
//! other removes its files and fails; `_seqwin.json` and `_SUCCESS` follow.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::manifest::{log_name, log_version, LOG_DIR};
use super::{Manifest, MANIFEST, SUCCESS};
use crate::config::SinkMode;
use crate::error::{Error, Result};
use crate::hive::is_part_file_name;
use crate::location::StoreUrl;
use crate::plan::SinkPlan;
use crate::store::{self, Remote};

pub use crate::store::Upload;

/// Marker written at the start of a run and removed after `_SUCCESS`.
pub const WRITING: &str = "_seqwin.writing";

/// How long a failed run spends removing what it wrote before giving up.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the data files of a run go, shared with the file writers.
#[derive(Debug)]
pub struct RemoteDest {
    /// The sink location.
    pub remote: Remote,
    /// Inserted before `.parquet` so that new names never equal old ones.
    tag: String,
    /// Every key this run started writing.
    written: Mutex<Vec<Key>>,
}

impl RemoteDest {
    /// The object name for a file name the pipeline chose (`dir/part-00000.parquet`).
    pub fn file_name(&self, name: &str) -> String {
        match name.strip_suffix(".parquet") {
            Some(stem) => format!("{stem}{}.parquet", self.tag),
            None => name.to_string(),
        }
    }

    /// Records that `key` is being written, for cleanup on failure.
    pub fn record(&self, key: Key) {
        self.written.lock().expect("not poisoned").push(key);
    }

    /// Starts the upload of the data file `name` (tagged by
    /// [`RemoteDest::file_name`]), recorded for cleanup: the object's name
    /// below the sink, its URL and the upload.
    ///
    /// # Errors
    /// [`Error::SinkStore`] for an invalid key, [`Error::Io`] when the store
    /// refuses the upload.
    pub fn create(&self, name: &str) -> Result<(String, PathBuf, Upload)> {
        let name = self.file_name(name);
        let key = self
            .remote
            .child(&name)
            .map_err(|e| Error::sink_store(&self.remote.url, e))?;
        let path = self.remote.display(&key);
        self.record(key.clone());
        let upload =
            Upload::start(self.remote.store.as_ref(), &key).map_err(|e| Error::io(&path, e))?;
        Ok((name, path, upload))
    }
}

/// A run writing to an object store prefix.
#[derive(Debug)]
pub struct RemoteStaging {
    dest: Arc<RemoteDest>,
    old: Vec<ObjectMeta>,
    /// The current version an append adds to.
    previous: Option<Manifest>,
    /// The newest version in the log of the dataset an overwrite replaces.
    replaced: Option<u64>,
    mode: SinkMode,
    had_success: bool,
    removed_success: bool,
    marker_created: bool,
    manifest_written: bool,
    committed: bool,
    spill: PathBuf,
}

impl RemoteStaging {
    /// Checks the prefix against `mode` and marks it as being written.
    ///
    /// # Errors
    /// [`Error::Sink`] (exit 2) for missing credentials, a missing bucket, a
    /// refused prefix; [`Error::Io`] when the marker cannot be written.
    pub fn prepare(plan: &SinkPlan, url: &StoreUrl) -> Result<RemoteStaging> {
        let url = url.as_str();
        let remote =
            Remote::open(url, &plan.storage_options).map_err(|e| Error::sink_store(url, e))?;
        if remote.prefix.as_ref().is_empty() {
            return Err(Error::sink(
                url,
                "sink.path must name a prefix inside the bucket, not the bucket itself",
            ));
        }
        let old = remote.list(&remote.prefix).map_err(|e| {
            Error::sink(
                url,
                format!("cannot list the sink: {}", store::describe(&e)),
            )
        })?;
        let key = |name: &str| remote.child(name).map_err(|e| Error::sink_store(url, e));
        let (manifest_key, success_key, marker_key) =
            (key(MANIFEST)?, key(SUCCESS)?, key(WRITING)?);
        let has = |k: &Key| old.iter().any(|m| &m.location == k);
        if !old.is_empty() {
            match plan.mode {
                SinkMode::Error => {
                    return Err(Error::sink(
                        url,
                        format!(
                            "sink.path is not empty ({} objects under this prefix; sink.mode: error); remove them or set sink.mode: overwrite",
                            old.len()
                        ),
                    ))
                }
                SinkMode::Overwrite if !(has(&manifest_key) || has(&marker_key)) => {
                    return Err(Error::sink(
                        url,
                        format!("sink.path is not a seqwin dataset (no {MANIFEST} under this prefix); refusing to overwrite it"),
                    ))
                }
                SinkMode::Overwrite | SinkMode::Append => {}
            }
        }
        let depth = remote.prefix.parts().count();
        let previous = match plan.mode {
            SinkMode::Append if !old.is_empty() => {
                if has(&marker_key) {
                    return Err(Error::sink(
                        url,
                        format!("an interrupted run left {WRITING} under this prefix: the dataset is incomplete; refusing to append to it (rebuild it with sink.mode: overwrite)"),
                    ));
                }
                Some(latest_version(&remote, &old, url)?)
            }
            _ => None,
        };
        let tag = if plan.mode == SinkMode::Append {
            format!(
                "-{}{:07}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
                std::process::id() % 10_000_000
            )
        } else if old.iter().any(|m| {
            m.location
                .parts()
                .skip(depth)
                .last()
                .is_some_and(|p| is_part_file_name(p.as_ref()))
        }) {
            "-1".to_string()
        } else {
            String::new()
        };
        let spill = std::env::temp_dir().join(format!(
            "seqwin-sort-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let (had_marker, had_success) = (has(&marker_key), has(&success_key));
        let log = key(LOG_DIR)?;
        let replaced = (old.iter())
            .filter(|m| m.location.prefix_matches(&log))
            .filter_map(|m| m.location.filename().and_then(log_version))
            .max();
        let mut staging = RemoteStaging {
            dest: Arc::new(RemoteDest {
                remote,
                tag,
                written: Mutex::new(Vec::new()),
            }),
            old,
            previous,
            replaced,
            mode: plan.mode,
            had_success,
            removed_success: false,
            marker_created: false,
            manifest_written: false,
            committed: false,
            spill,
        };
        let io = |e| Error::io(url, store::io_error(e));
        if plan.mode == SinkMode::Append {
            return Ok(staging);
        }
        if !had_marker {
            staging
                .dest
                .remote
                .put(&marker_key, Vec::new())
                .map_err(io)?;
            staging.marker_created = true;
        }
        if had_success {
            staging.dest.remote.delete(&[success_key]).map_err(io)?;
            staging.removed_success = true;
        }
        Ok(staging)
    }

    /// The current version of the dataset an append adds to.
    pub fn previous(&self) -> Option<&Manifest> {
        self.previous.as_ref()
    }

    /// The version number of the dataset this run writes: one more than
    /// the version it appends to or the newest one it replaces, else 0.
    pub fn next_version(&self) -> u64 {
        let current = self.previous.as_ref().map(|m| m.version).or(self.replaced);
        current.map_or(0, |v| v + 1)
    }

    /// The destination the data files are written to.
    pub fn dest(&self) -> Arc<RemoteDest> {
        Arc::clone(&self.dest)
    }

    /// A local directory for shuffle buckets (object stores cannot append).
    pub fn spill_root(&self) -> PathBuf {
        self.spill.clone()
    }

    /// Writes the manifest, then `_SUCCESS`, then removes the old dataset.
    ///
    /// # Errors
    /// [`Error::Io`] when a request fails.
    pub fn commit(mut self, manifest: &Manifest) -> Result<()> {
        let remote = &self.dest.remote;
        let url = PathBuf::from(&remote.url);
        let key = |name: &str| remote.child(name).map_err(|e| Error::sink_store(&url, e));
        let io = |k: &Key| {
            let p = remote.display(k);
            move |e| Error::io(p, store::io_error(e))
        };
        let text = serde_json::to_string_pretty(manifest)
            .map_err(|e| Error::Internal(e.to_string()))?
            + "\n";
        let log_key = key(&log_name(manifest.version))?;
        if self.mode == SinkMode::Append {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            let put = store::block_on(remote.store.put_opts(
                &log_key,
                PutPayload::from(text.clone().into_bytes()),
                options,
            ));
            match put {
                Ok(_) => {}
                Err(object_store::Error::AlreadyExists { .. }) => {
                    return Err(Error::CommitConflict {
                        path: url,
                        version: manifest.version,
                    })
                }
                Err(e @ object_store::Error::NotImplemented { .. }) => {
                    return Err(Error::sink(
                        &url,
                        format!(
                            "sink.mode: append needs the store's conditional put (create only if absent), which it refused: {}; enable it (for S3: storage option conditional_put: etag)",
                            store::describe(&e).trim_end_matches('.')
                        ),
                    ))
                }
                Err(e) => return Err(io(&log_key)(e)),
            }
            self.committed = true;
            self.manifest_written = true;
        } else {
            remote
                .put(&log_key, text.clone().into_bytes())
                .map_err(io(&log_key))?;
        }
        let manifest_key = key(MANIFEST)?;
        remote
            .put(&manifest_key, text.into_bytes())
            .map_err(io(&manifest_key))?;
        self.manifest_written = true;
        let success_key = key(SUCCESS)?;
        if self.mode == SinkMode::Append && self.had_success {
            self.committed = true;
            return Ok(());
        }
        remote
            .put(&success_key, Vec::new())
            .map_err(io(&success_key))?;
        self.committed = true;
        if self.mode == SinkMode::Append {
            return Ok(());
        }
        let mut keep: HashSet<Key> = self
            .dest
            .written
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        keep.insert(manifest_key);
        keep.insert(success_key);
        keep.insert(log_key);
        let stale: Vec<Key> = self
            .old
            .iter()
            .map(|m| m.location.clone())
            .filter(|k| !keep.contains(k))
            .chain(std::iter::once(key(WRITING)?))
            .collect();
        remote.delete(&stale).map_err(|e| {
            Error::io(
                &url,
                std::io::Error::other(format!(
                    "the new dataset is complete, but the old one's objects could not all be removed: {}",
                    store::describe(&e)
                )),
            )
        })
    }
}

/// The manifest of the current version of the dataset at `url`, without
/// writing anything (`None` for an empty prefix).
///
/// # Errors
/// As [`RemoteStaging::prepare`] under `append`.
pub fn current_version(plan: &SinkPlan, url: &StoreUrl) -> Result<Option<Manifest>> {
    let url = url.as_str();
    let remote = Remote::open(url, &plan.storage_options).map_err(|e| Error::sink_store(url, e))?;
    let old = remote.list(&remote.prefix).map_err(|e| {
        Error::sink(
            url,
            format!("cannot list the sink: {}", store::describe(&e)),
        )
    })?;
    if old.is_empty() {
        return Ok(None);
    }
    let marker = remote
        .child(WRITING)
        .map_err(|e| Error::sink_store(url, e))?;
    if old.iter().any(|m| m.location == marker) {
        return Err(Error::sink(
            url,
            format!("an interrupted run left {WRITING} under this prefix: the dataset is incomplete; refusing to append to it (rebuild it with sink.mode: overwrite)"),
        ));
    }
    latest_version(&remote, &old, url).map(Some)
}

/// The manifest of the current version under a prefix: the log entry with
/// the largest number, or `_seqwin.json` for a dataset without a log.
fn latest_version(remote: &Remote, old: &[ObjectMeta], url: &str) -> Result<Manifest> {
    let log = remote
        .child(LOG_DIR)
        .map_err(|e| Error::sink_store(url, e))?;
    let latest = old
        .iter()
        .filter(|m| m.location.prefix_matches(&log))
        .filter_map(|m| {
            let name = m.location.filename()?;
            log_version(name).map(|v| (v, m.location.clone()))
        })
        .max_by_key(|(v, _)| *v);
    let key = match latest {
        Some((_, k)) => k,
        None => {
            let k = remote
                .child(MANIFEST)
                .map_err(|e| Error::sink_store(url, e))?;
            if !old.iter().any(|m| m.location == k) {
                return Err(Error::sink(
                    url,
                    format!("sink.path is not a seqwin dataset (no {MANIFEST} under this prefix); refusing to append to it"),
                ));
            }
            k
        }
    };
    let text = store::block_on(async {
        let got = remote.store.get(&key).await?;
        got.bytes().await
    })
    .map_err(|e| Error::io(remote.display(&key), store::io_error(e)))?;
    serde_json::from_slice(&text).map_err(|e| {
        Error::sink(
            url,
            format!(
                "{} cannot be read by this seqwin version ({e}); refusing to append to it",
                remote.display(&key).display()
            ),
        )
    })
}

impl Drop for RemoteStaging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.spill);
        if self.committed {
            return;
        }
        let remote = self.dest.remote.clone();
        let mut undo: Vec<Key> = self
            .dest
            .written
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        if self.marker_created && !self.manifest_written {
            undo.extend(remote.child(WRITING).ok());
        }
        let restore = (self.removed_success && !self.manifest_written)
            .then(|| remote.child(SUCCESS).ok())
            .flatten();
        let _ = store::block_on(async move {
            tokio::time::timeout(CLEANUP_TIMEOUT, async {
                let _ = store::delete_all(remote.store.as_ref(), undo).await;
                if let Some(k) = restore {
                    let _ = remote.store.put(&k, Vec::new().into()).await;
                }
            })
            .await
        });
    }
}
