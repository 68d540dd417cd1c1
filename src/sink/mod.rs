//! The output side: hive partition paths, Parquet file writers whose row
//! groups are encoded in parallel, the manifest, and the staging directory
//! that is renamed into place at the end (SPEC §3.6).
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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory, ArrowWriterOptions,
};
use parquet::arrow::ArrowSchemaConverter;
use parquet::arrow::ArrowWriter;
use parquet::basic::Encoding;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::config::SinkMode;
use crate::error::{Error, Result};
use crate::plan::{Plan, SinkPlan};
use crate::window::TokenAccount;

pub mod remote;

use remote::{RemoteDest, RemoteStaging};

/// The manifest file name.
pub const MANIFEST: &str = "_seqwin.json";
/// The success marker.
pub const SUCCESS: &str = "_SUCCESS";
/// Hive's name for a null or empty partition value.
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Escapes a partition value the way Hive and Spark do: `%XX` for control
/// characters and `"#%'*/:=?\{[]^` and DEL; other characters as they are.
pub fn escape_partition_value(value: Option<&str>) -> String {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return HIVE_DEFAULT_PARTITION.to_string();
    };
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if (c as u32) < 0x20 || c == '\u{7f}' || "\"#%'*/:=?\\{[]^".contains(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`escape_partition_value`] (`%XX` → the byte), leaving malformed escapes as they are.
pub fn unescape_partition_value(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A partition directory, `key=value/key=value` (empty for no partitioning).
pub fn partition_dir(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                escape_partition_value(Some(k)),
                escape_partition_value(*v)
            )
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The name of the `seq`-th data file of partition directory `dir` (empty:
/// no partitioning): `dir/part-00000.parquet`.
pub fn part_file_name(dir: &str, seq: usize) -> String {
    if dir.is_empty() {
        format!("part-{seq:05}.parquet")
    } else {
        format!("{dir}/part-{seq:05}.parquet")
    }
}

/// Whether a file name (the last path component) is one [`part_file_name`] makes.
pub fn is_part_file_name(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|r| r.strip_suffix(".parquet"))
        .is_some_and(|digits| digits.len() >= 5 && digits.bytes().all(|b| b.is_ascii_digit()))
}

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
fn create_dir_all(dir: &Path) -> Result<()> {
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
    pub fn prepare(plan: &SinkPlan) -> Result<Staging> {
        let sink = plan.path.clone();
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

/// Writer properties for the output files.
pub fn writer_properties(plan: &Plan, schema: &SchemaRef) -> WriterProperties {
    let w = &plan.window;
    let opt = |v: Option<i64>| v.map_or("null".to_string(), |v| v.to_string());
    let kv = vec![
        KeyValue::new("seqwin.version".into(), crate::VERSION.to_string()),
        KeyValue::new("seqwin.seq_len".into(), w.seq_len.to_string()),
        KeyValue::new("seqwin.stride".into(), w.stride.to_string()),
        KeyValue::new("seqwin.pack".into(), w.pack.to_string()),
        KeyValue::new("seqwin.separator".into(), opt(w.separator)),
        KeyValue::new(
            "seqwin.remainder".into(),
            format!("{:?}", w.remainder).to_lowercase(),
        ),
        KeyValue::new("seqwin.pad_id".into(), w.pad_id.to_string()),
        KeyValue::new("seqwin.ignore_index".into(), w.ignore_index.to_string()),
        KeyValue::new(
            "seqwin.vocab_size".into(),
            opt(w.vocab_size.map(|v| v as i64)),
        ),
        KeyValue::new("seqwin.dtype".into(), w.dtype.name().to_string()),
    ];
    let mut b = WriterProperties::builder()
        .set_compression(plan.sink.compression)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_key_value_metadata(Some(kv));
    // Scalar columns (doc_id, start, lane, step, carried values) are small and
    // worth statistics and dictionaries; token lists are not.
    for f in schema.fields() {
        if !matches!(f.data_type(), arrow::datatypes::DataType::FixedSizeList(..)) {
            let path = ColumnPath::new(vec![f.name().clone()]);
            b = b
                .set_column_dictionary_enabled(path.clone(), true)
                .set_column_statistics_enabled(path, EnabledStatistics::Chunk);
        }
    }
    // List columns: overlapping windows (stride < seq_len) repeat each other
    // shifted by `stride` values, which zstd finds only in PLAIN data (case C
    // of the benchmark: 13 MB plain vs 205 MB delta). Non-overlapping token
    // windows and the regular position/segment/mask lists are smaller and
    // faster to compress as DELTA_BINARY_PACKED (case A: 0.71 s vs 1.09 s).
    if let Ok(descr) = ArrowSchemaConverter::new().convert(schema) {
        for col in descr.columns() {
            let top = col.path().parts()[0].as_str();
            let delta = match top {
                "input" | "target" => w.stride >= w.seq_len,
                "loss_mask" | "position_ids" | "segment_ids" => true,
                _ => false,
            };
            if delta {
                b = b.set_column_encoding(col.path().clone(), Encoding::DELTA_BINARY_PACKED);
            }
        }
    }
    b.build()
}

/// The sink of a run: a local staging directory renamed into place at the
/// end, or an object store prefix written under the protocol of [`remote`].
#[derive(Debug)]
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

impl Target {
    /// Prepares the sink of `plan` (see [`Staging::prepare`] and
    /// [`RemoteStaging::prepare`]).
    ///
    /// # Errors
    /// [`Error::Sink`] when the sink may not be written; [`Error::Io`].
    pub fn prepare(plan: &SinkPlan) -> Result<Target> {
        match crate::store::remote_url(&plan.path) {
            Some(url) => Ok(Target::Remote(RemoteStaging::prepare(plan, url)?)),
            None => Ok(Target::Local(Staging::prepare(plan)?)),
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

/// The byte sink of one output file (behind one `BufWriter`, so that the
/// writer's many small writes reach a file or an upload in 1 MiB pieces).
enum PartSink {
    File(File),
    Store(crate::store::Upload),
}

impl Write for PartSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            PartSink::File(f) => f.write(buf),
            PartSink::Store(u) => u.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            PartSink::File(f) => f.flush(),
            PartSink::Store(u) => u.flush(),
        }
    }
}

/// An output file being written; row groups are encoded elsewhere and appended in order.
pub struct PartFile {
    /// Path relative to the dataset root.
    pub name: String,
    path: PathBuf,
    writer: SerializedFileWriter<BufWriter<PartSink>>,
    /// Builds column writers for a row group; shared with encoding threads.
    pub factory: Arc<ArrowRowGroupWriterFactory>,
    /// Rows appended so far.
    pub rows: u64,
}

impl std::fmt::Debug for PartFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartFile")
            .field("name", &self.name)
            .field("rows", &self.rows)
            .finish()
    }
}

/// A file entry of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the dataset root.
    pub name: String,
    /// Windows in the file.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
}

impl PartFile {
    /// Creates `name` below `dest` with the output schema and properties.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Write`] when the file cannot be created.
    pub fn create(
        dest: &Dest,
        name: String,
        schema: &SchemaRef,
        props: &WriterProperties,
    ) -> Result<PartFile> {
        tracing::debug!(%name, "creating output file");
        let (name, path, sink) = match dest {
            Dest::Dir(root) => {
                let path = root.join(&name);
                if let Some(parent) = path.parent() {
                    create_dir_all(parent)?;
                }
                let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
                (name, path, PartSink::File(file))
            }
            Dest::Store(d) => {
                let name = d.file_name(&name);
                let key = d
                    .remote
                    .child(&name)
                    .map_err(|m| Error::sink(&d.remote.url, m))?;
                let path = d.remote.display(&key);
                d.record(key.clone());
                let upload = crate::store::Upload::start(d.remote.store.as_ref(), &key)
                    .map_err(|e| Error::io(&path, e))?;
                (name, path, PartSink::Store(upload))
            }
        };
        let options = ArrowWriterOptions::new().with_properties(props.clone());
        let sink = BufWriter::with_capacity(1 << 20, sink);
        let writer = ArrowWriter::try_new_with_options(sink, Arc::clone(schema), options)
            .map_err(|e| Error::write(&path, e))?;
        let (writer, factory) = writer
            .into_serialized_writer()
            .map_err(|e| Error::write(&path, e))?;
        Ok(PartFile {
            name,
            path,
            writer,
            factory: Arc::new(factory),
            rows: 0,
        })
    }

    /// Appends an encoded row group.
    ///
    /// # Errors
    /// [`Error::Write`] (including I/O errors such as a full disk).
    pub fn append(&mut self, chunks: Vec<ArrowColumnChunk>, rows: usize) -> Result<()> {
        let mut rg = self
            .writer
            .next_row_group()
            .map_err(|e| write_error(&self.path, e))?;
        for c in chunks {
            c.append_to_row_group(&mut rg)
                .map_err(|e| write_error(&self.path, e))?;
        }
        rg.close().map_err(|e| write_error(&self.path, e))?;
        self.rows += rows as u64;
        Ok(())
    }

    /// Writes the footer and closes the file.
    ///
    /// # Errors
    /// [`Error::Write`] / [`Error::Io`].
    pub fn close(mut self) -> Result<FileEntry> {
        self.writer
            .finish()
            .map_err(|e| write_error(&self.path, e))?;
        let bytes = self.writer.bytes_written() as u64;
        // `finish` flushed the BufWriter; an upload still has to complete.
        if let PartSink::Store(upload) = self.writer.inner_mut().get_mut() {
            upload.finish().map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(FileEntry {
            name: self.name,
            rows: self.rows,
            bytes,
        })
    }
}

fn write_error(path: &Path, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => Error::io(path, *io),
                Err(other) => Error::write(path, other),
            }
        }
        other => Error::write(path, other),
    }
}

/// Encodes one row group's batch into column chunks (runs on any thread).
///
/// # Errors
/// [`Error::Write`] if the encoder fails.
pub fn encode_row_group(
    factory: &ArrowRowGroupWriterFactory,
    row_group: usize,
    batch: &RecordBatch,
    path_for_errors: &str,
) -> Result<Vec<ArrowColumnChunk>> {
    let err = |e: parquet::errors::ParquetError| Error::write(path_for_errors, e);
    let mut writers = factory.create_column_writers(row_group).map_err(err)?;
    let mut k = 0;
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let column: &ArrayRef = column;
        for leaf in compute_leaves(field, column).map_err(err)? {
            writers[k].write(&leaf).map_err(err)?;
            k += 1;
        }
    }
    writers
        .into_iter()
        .map(|w| w.close().map_err(err))
        .collect()
}

/// One output partition in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionEntry {
    /// Directory relative to the root (`""` when not partitioned).
    pub path: String,
    /// Partition column values (unescaped; null for Hive's default partition).
    pub values: BTreeMap<String, Option<String>>,
    /// The token account.
    pub account: TokenAccount,
    /// Files, in order.
    pub files: Vec<FileEntry>,
}

/// An input file in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputEntry {
    /// Path as resolved.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows.
    pub rows: u64,
}

/// A field of the output schema in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldEntry {
    /// Column name.
    pub name: String,
    /// Arrow type.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether nulls are allowed.
    pub nullable: bool,
}

/// The `_seqwin.json` manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// seqwin version that wrote the dataset.
    pub seqwin_version: String,
    /// The resolved pipeline configuration.
    pub config: crate::config::PipelineConfig,
    /// Write mode used (not part of the data).
    #[serde(skip)]
    pub mode: SinkMode,
    /// Input files.
    pub inputs: Vec<InputEntry>,
    /// Output partitions, sorted by path.
    pub partitions: Vec<PartitionEntry>,
    /// Sum of the partitions' accounts.
    pub totals: TokenAccount,
    /// The output Arrow schema (partition columns live in directory names).
    pub schema: Vec<FieldEntry>,
    /// Partition columns.
    pub partition_by: Vec<String>,
    /// Wall time of the run.
    pub elapsed_seconds: f64,
}
