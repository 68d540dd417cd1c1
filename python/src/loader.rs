//! Row-group reading for the trainer-side loader (`seqwin.Loader`) and
//! `seqwin.WindowDataset`: the Python classes of the readers' hot path.
//!
//! A [`RowGroupReader`] opens a list of Parquet files of a seqwin dataset
//! once (footers decoded and kept, [`crate::files`]), then decodes any list
//! of row groups into one record batch with contiguous buffers
//! ([`crate::decode`]) — a `fixed_size_list` column of `rows × seq_len`
//! tokens is one flat values buffer, which Python views as a `(rows,
//! seq_len)` numpy array without a copy. Decoding runs with the GIL
//! released. [`Prefetch`] does the same on a background thread for a known
//! sequence of row-group blocks, a bounded number of blocks ahead.
//!
//! ```text
//!  files ──footer (once)──► ArrowReaderMetadata
//!  block = [(file, rg), …] ──pread / range GET of the column chunks──►
//!        decode (arrow-rs) ──concat──► RecordBatch ──C stream──► pyarrow ──► numpy
//! ```

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchIterator};
use parquet::file::reader::ChunkReader;
use pyo3::exceptions::{PyIOError, PyValueError};
use pyo3::prelude::*;

use seqwin::location::Location;

use crate::files::{locate, open_files, open_remote, Files};
use crate::{ArrowStream, ErrorSlot};

fn to_stream(batch: RecordBatch) -> ArrowStream {
    let schema = batch.schema();
    let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
    ArrowStream {
        stream: Mutex::new(Some(FFI_ArrowArrayStream::new(Box::new(reader)))),
        error: ErrorSlot::default(),
    }
}

/// `RowGroupReader(root, names, storage_options)`: the Parquet files
/// `root/name` of a seqwin dataset (a local directory or an object store
/// URL), opened once.
#[pyclass(module = "seqwin._seqwin", frozen)]
pub struct RowGroupReader {
    files: Arc<Files>,
}

/// Reads a small whole file of a dataset (the manifest): local or remote.
#[pyfunction]
#[pyo3(signature = (root, name, storage_options=None))]
pub fn read_dataset_file(
    py: Python<'_>,
    root: &str,
    name: &str,
    storage_options: Option<BTreeMap<String, String>>,
) -> PyResult<Vec<u8>> {
    py.detach(|| {
        let Location::Local(dir) = locate(root)? else {
            let dir = open_remote(root, &storage_options.unwrap_or_default())?;
            let size = *dir
                .objects
                .get(name)
                .ok_or_else(|| format!("{root}/{name} does not exist"))?;
            if size == 0 {
                return Ok(Vec::new());
            }
            let data = (dir.ranges)(name, size)(std::iter::once(0..size).collect())?;
            return data
                .get_bytes(0, size as usize)
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string());
        };
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    })
    .map_err(PyIOError::new_err)
}

#[pymethods]
impl RowGroupReader {
    #[new]
    #[pyo3(signature = (root, names, storage_options=None))]
    fn new(
        py: Python<'_>,
        root: &str,
        names: Vec<String>,
        storage_options: Option<BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let options = storage_options.unwrap_or_default();
        let files = py
            .detach(|| open_files(root, &names, &options))
            .map_err(PyIOError::new_err)?;
        Ok(RowGroupReader {
            files: Arc::new(files),
        })
    }

    /// Rows of every row group, per file.
    fn row_group_rows(&self) -> Vec<Vec<i64>> {
        self.files
            .files
            .iter()
            .map(|f| {
                let md = f.meta.metadata();
                (0..md.num_row_groups())
                    .map(|i| md.row_group(i).num_rows())
                    .collect()
            })
            .collect()
    }

    /// The key-value metadata of the first file (the `seqwin.*` keys).
    fn key_value_metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(f) = self.files.files.first() {
            if let Some(kv) = f.meta.metadata().file_metadata().key_value_metadata() {
                for e in kv {
                    if let Some(v) = &e.value {
                        out.insert(e.key.clone(), v.clone());
                    }
                }
            }
        }
        out
    }

    /// Decodes `columns` of `row_groups` ((file, row group) pairs) into one
    /// batch on up to `threads` threads, with the GIL released; returns an
    /// Arrow C stream of it.
    #[pyo3(signature = (row_groups, columns, threads=1))]
    fn read(
        &self,
        py: Python<'_>,
        row_groups: Vec<(usize, usize)>,
        columns: Vec<String>,
        threads: usize,
    ) -> PyResult<ArrowStream> {
        let batch = py
            .detach(|| self.files.read(&row_groups, &columns, threads))
            .map_err(PyIOError::new_err)?;
        Ok(to_stream(batch))
    }

    /// Starts decoding `blocks` (each a list of (file, row group) pairs) in
    /// order on a background thread, at most `ahead` blocks ahead of the
    /// consumer, each on up to `threads` threads.
    #[pyo3(signature = (blocks, columns, ahead, threads=1))]
    fn prefetch(
        &self,
        blocks: Vec<Vec<(usize, usize)>>,
        columns: Vec<String>,
        ahead: usize,
        threads: usize,
    ) -> PyResult<Prefetch> {
        if ahead == 0 {
            return Err(PyValueError::new_err("prefetch needs ahead >= 1"));
        }
        // The channel holds `ahead - 1` finished blocks; the thread decodes one more.
        let (tx, rx) = sync_channel(ahead - 1);
        let files = Arc::clone(&self.files);
        std::thread::Builder::new()
            .name("seqwin-prefetch".into())
            .spawn(move || {
                for block in blocks {
                    let result = files.read(&block, &columns, threads);
                    let failed = result.is_err();
                    // The consumer went away: stop.
                    if tx.send(result).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| PyIOError::new_err(format!("cannot start the prefetch thread: {e}")))?;
        Ok(Prefetch { rx: Mutex::new(rx) })
    }
}

/// Blocks decoded ahead by a background thread, in order.
#[pyclass(module = "seqwin._seqwin", frozen)]
pub struct Prefetch {
    rx: Mutex<Receiver<Result<RecordBatch, String>>>,
}

#[pymethods]
impl Prefetch {
    /// The next block (an Arrow C stream of one batch), `None` after the last.
    fn next(&self, py: Python<'_>) -> PyResult<Option<ArrowStream>> {
        let got = py.detach(|| {
            let rx = self
                .rx
                .lock()
                .map_err(|_| "the prefetch queue is unusable".to_string())?;
            match rx.recv() {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            }
        });
        got.map(|b| b.map(to_stream)).map_err(PyIOError::new_err)
    }
}
