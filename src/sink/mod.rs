//! The output side: where data files go (a local staging directory or an
//! object store prefix), the rolling part-file writer, Parquet encoding, the
//! manifest, and the commit that publishes a run's dataset.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::plan::SinkPlan;

pub mod encode;
pub mod local;
pub mod manifest;
#[cfg(feature = "cloud")]
pub mod remote;
pub mod rolling;

/// Without the `cloud` feature no sink is in an object store: plan
/// compilation refuses such paths ([`Error::CloudDisabled`]), and these
/// types, which have no values, keep the rest of the module free of `cfg`.
#[cfg(not(feature = "cloud"))]
pub mod remote {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::Manifest;
    use crate::error::{Error, Result};
    use crate::location::StoreUrl;
    use crate::plan::SinkPlan;

    /// A run writing to an object store prefix: none in this build.
    #[derive(Debug)]
    pub enum RemoteStaging {}

    /// Where the data files of an object store run go: none in this build.
    #[derive(Debug)]
    pub enum RemoteDest {}

    /// A multipart upload: none in this build.
    pub enum Upload {}

    impl RemoteStaging {
        /// Refuses the sink: this build has no object stores.
        ///
        /// # Errors
        /// Always [`Error::CloudDisabled`].
        pub fn prepare(_: &SinkPlan, url: &StoreUrl) -> Result<RemoteStaging> {
            Err(Error::CloudDisabled {
                key: "sink.path",
                url: url.clone(),
            })
        }

        /// Unreachable: there is no value to call it on.
        pub fn dest(&self) -> Arc<RemoteDest> {
            match *self {}
        }

        /// Unreachable: there is no value to call it on.
        pub fn spill_root(&self) -> PathBuf {
            match *self {}
        }

        /// Unreachable: there is no value to call it on.
        pub fn commit(self, _: &Manifest) -> Result<()> {
            match self {}
        }

        /// Unreachable: there is no value to call it on.
        pub fn previous(&self) -> Option<&Manifest> {
            match *self {}
        }

        /// Unreachable: there is no value to call it on.
        pub fn next_version(&self) -> u64 {
            match *self {}
        }
    }

    /// Refuses the sink: this build has no object stores.
    ///
    /// # Errors
    /// Always [`Error::CloudDisabled`].
    pub fn current_version(_: &SinkPlan, url: &StoreUrl) -> Result<Option<Manifest>> {
        Err(Error::CloudDisabled {
            key: "sink.path",
            url: url.clone(),
        })
    }

    impl RemoteDest {
        /// Unreachable: there is no value to call it on.
        pub fn file_name(&self, _: &str) -> String {
            match *self {}
        }

        /// Unreachable: there is no value to call it on.
        pub fn create(&self, _: &str) -> Result<(String, PathBuf, Upload)> {
            match *self {}
        }
    }

    impl Upload {
        /// Unreachable: there is no value to call it on.
        pub fn finish(&mut self) -> std::io::Result<()> {
            match *self {}
        }
    }

    impl std::io::Write for Upload {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            match *self {}
        }

        fn flush(&mut self) -> std::io::Result<()> {
            match *self {}
        }
    }
}

pub use encode::{encode_row_group, writer_properties};
pub use local::Staging;
pub use manifest::{
    log_name, log_version, FieldEntry, InputEntry, Manifest, PartitionEntry, SourceAccount,
    LOG_DIR, MANIFEST, SUCCESS,
};
pub use rolling::{
    EncodedRowGroup, OpenFiles, PartFiles, RowGroupJob, Take, WriteSettings, MAX_OPEN_FILES,
};

use remote::{RemoteDest, RemoteStaging};

/// The sink of a run: a local staging directory renamed into place at the
/// end, or an object store prefix written under the protocol of [`remote`].
#[derive(Debug)]
// Without `cloud` the remote variant has no values, so the size difference
// costs nothing.
#[cfg_attr(not(feature = "cloud"), allow(clippy::large_enum_variant))]
pub enum Target {
    /// A local directory.
    Local(Staging),
    /// An object store prefix.
    Remote(RemoteStaging),
}

/// Where the data files of a run are created.
#[derive(Debug, Clone)]
pub enum Dest {
    /// Below a local (staging) directory.
    Dir(PathBuf),
    /// Under an object store prefix.
    Store(Arc<RemoteDest>),
}

impl Dest {
    /// The name a data file gets at this destination (object stores may tag
    /// it so that it never replaces an object of the previous dataset).
    pub fn file_name(&self, name: &str) -> String {
        match self {
            Dest::Dir(_) => name.to_string(),
            Dest::Store(d) => d.file_name(name),
        }
    }
}

/// Longest directory name a local filesystem accepts.
const MAX_DIR_NAME_BYTES: usize = 255;

/// Checks that the directories of a partition (`dir`, `key=value/…` in the
/// order of `values`) can be created at a local sink: each name within the
/// file-name limit. Object store keys have no such limit.
///
/// # Errors
/// [`Error::Sink`] naming the column and the value's length.
pub fn check_partition_dir(
    sink: &Location,
    values: &[(String, Option<String>)],
    dir: &str,
) -> Result<()> {
    let Location::Local(path) = sink else {
        return Ok(());
    };
    for (name, (column, value)) in dir.split('/').zip(values) {
        if name.len() > MAX_DIR_NAME_BYTES {
            let bytes = value.as_ref().map_or(0, |v| v.len());
            return Err(Error::sink(
                path,
                format!(
                    "partition column `{column}` has a value of {bytes} bytes; its directory name `{column}=…` would be {} bytes, over the {MAX_DIR_NAME_BYTES}-byte limit of file names: shorten the values or do not partition by `{column}`",
                    name.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The manifest of the current version of the dataset at `plan.path`, read
/// without locking or writing anything (`None` when there is no dataset):
/// what an append would add to.
///
/// # Errors
/// [`Error::Sink`] when the path holds something other than a seqwin
/// dataset; [`Error::Io`].
pub fn current_version(plan: &SinkPlan) -> Result<Option<Manifest>> {
    match &plan.path {
        Location::Local(path) => local::current_version(path),
        Location::Remote(url) => remote::current_version(plan, url),
    }
}

impl Target {
    /// Prepares the sink of `plan` (see [`Staging::prepare`] and
    /// [`RemoteStaging::prepare`]).
    ///
    /// # Errors
    /// [`Error::Sink`] when the sink may not be written; [`Error::Io`].
    pub fn prepare(plan: &SinkPlan) -> Result<Target> {
        match &plan.path {
            Location::Remote(url) => Ok(Target::Remote(RemoteStaging::prepare(plan, url)?)),
            Location::Local(path) => Ok(Target::Local(Staging::prepare(plan, path)?)),
        }
    }

    /// The current version of the dataset an append adds to (`None` for
    /// other modes, and for an append to a missing or empty sink).
    pub fn previous(&self) -> Option<&Manifest> {
        match self {
            Target::Local(s) => s.previous(),
            Target::Remote(r) => r.previous(),
        }
    }

    /// The version number of the dataset this run writes (see
    /// [`Staging::next_version`]).
    pub fn next_version(&self) -> u64 {
        match self {
            Target::Local(s) => s.next_version(),
            Target::Remote(r) => r.next_version(),
        }
    }

    /// Where data files go.
    pub fn dest(&self) -> Dest {
        match self {
            Target::Local(s) => Dest::Dir(s.dir().to_path_buf()),
            Target::Remote(r) => Dest::Store(r.dest()),
        }
    }

    /// A local scratch directory for shuffle buckets, removed with the run.
    pub fn spill_root(&self) -> PathBuf {
        match self {
            Target::Local(s) => s.dir().join("_sort"),
            Target::Remote(r) => r.spill_root(),
        }
    }

    /// Publishes the dataset with its manifest.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Sink`].
    pub fn commit(self, manifest: &Manifest) -> Result<()> {
        match self {
            Target::Local(s) => s.commit(manifest),
            Target::Remote(r) => r.commit(manifest),
        }
    }
}
