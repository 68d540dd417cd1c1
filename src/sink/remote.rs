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
//! never writes `_SUCCESS`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStoreExt};

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
    tag: &'static str,
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
                SinkMode::Overwrite => {}
            }
        }
        let depth = remote.prefix.parts().count();
        let tag = if old.iter().any(|m| {
            m.location
                .parts()
                .skip(depth)
                .last()
                .is_some_and(|p| is_part_file_name(p.as_ref()))
        }) {
            "-1"
        } else {
            ""
        };
        let spill = std::env::temp_dir().join(format!(
            "seqwin-sort-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let (had_marker, had_success) = (has(&marker_key), has(&success_key));
        let mut staging = RemoteStaging {
            dest: Arc::new(RemoteDest {
                remote,
                tag,
                written: Mutex::new(Vec::new()),
            }),
            old,
            removed_success: false,
            marker_created: false,
            manifest_written: false,
            committed: false,
            spill,
        };
        let io = |e| Error::io(url, store::io_error(e));
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
        let text =
            serde_json::to_string_pretty(manifest).map_err(|e| Error::Internal(e.to_string()))?;
        let manifest_key = key(MANIFEST)?;
        remote
            .put(&manifest_key, (text + "\n").into_bytes())
            .map_err(io(&manifest_key))?;
        self.manifest_written = true;
        let success_key = key(SUCCESS)?;
        remote
            .put(&success_key, Vec::new())
            .map_err(io(&success_key))?;
        self.committed = true;
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
