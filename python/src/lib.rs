//! `seqwin._seqwin`: the Rust side of the Python package.
//!
//! Data crosses the boundary only through the Arrow PyCapsule interface: the
//! input is any object with `__arrow_c_stream__` (pyarrow, Polars, DuckDB …),
//! imported without a copy; the output is a C stream of record batches that
//! pyarrow imports without a copy. The Python layer (`seqwin/__init__.py`)
//! turns keyword arguments into the JSON of [`seqwin::stream::StreamConfig`].

use std::collections::VecDeque;
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::RecordBatch;
use arrow_array::RecordBatchReader;
use arrow_schema::ArrowError;
use arrow_schema::SchemaRef;
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyString};
use seqwin::pipeline::{Pipeline, ProgressCounter, RunOptions};
use std::sync::atomic::Ordering;

const SIGINT: i32 = 2;
use seqwin::split::DocKey;
use seqwin::stream::{StreamConfig, StreamWindower};

mod decode;
mod files;
mod loader;
mod pools;

pyo3::create_exception!(
    _seqwin,
    SeqwinError,
    PyValueError,
    "Bad configuration, arguments or input data (`.exit_code` 2, as the CLI's)."
);
pyo3::create_exception!(
    _seqwin,
    SeqwinIOError,
    PyOSError,
    "An I/O or other failure that is not the input's fault: a file that cannot be written, a full disk, an object store gone (`.exit_code` 1, as the CLI's)."
);

const STREAM: &CStr = c"arrow_array_stream";

/// A [`SeqwinError`] (exit code 2) or a [`SeqwinIOError`] (any other code).
fn error(message: String, exit_code: i32) -> PyErr {
    Python::attach(|py| {
        let err = if exit_code == 2 {
            SeqwinError::new_err(message)
        } else {
            SeqwinIOError::new_err(message)
        };
        // Setting an attribute on a fresh exception object cannot fail in practice.
        let _ = err.value(py).setattr("exit_code", exit_code);
        err
    })
}

/// The seqwin error that ended a window stream (message, exit code): the
/// Arrow C stream carries only a message, so Python asks for it here.
type ErrorSlot = Arc<Mutex<Option<(String, i32)>>>;

fn seqwin_err(e: seqwin::Error) -> PyErr {
    error(e.to_string(), e.exit_code())
}

/// Imports an object that speaks the Arrow PyCapsule stream interface.
fn import_stream(data: &Bound<'_, PyAny>) -> PyResult<RecordBatchStreamReader> {
    if !data.hasattr("__arrow_c_stream__")? {
        return Err(PyTypeError::new_err(format!(
            "expected Arrow data (an object with __arrow_c_stream__: a pyarrow Table or RecordBatchReader, a Polars DataFrame, a DuckDB result …), got {}",
            data.get_type().name()?
        )));
    }
    let capsule = data.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(STREAM))?;
    // SAFETY: the capsule holds an `ArrowArrayStream` (checked by name);
    // `from_raw` moves it out and marks the original released, so the
    // capsule's destructor will not release it a second time.
    unsafe { RecordBatchStreamReader::from_raw(ptr.as_ptr().cast()) }
        .map_err(|e| PyValueError::new_err(format!("cannot import the Arrow stream: {e}")))
}

/// Pulls input batches on demand and yields their windows.
struct WindowReader {
    input: RecordBatchStreamReader,
    windower: StreamWindower,
    schema: SchemaRef,
    pending: VecDeque<RecordBatch>,
    done: bool,
    error: ErrorSlot,
}

fn external(e: seqwin::Error, slot: &ErrorSlot) -> ArrowError {
    if let Ok(mut s) = slot.lock() {
        *s = Some((e.to_string(), e.exit_code()));
    }
    ArrowError::ExternalError(Box::new(e))
}

impl Iterator for WindowReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Some(Ok(b));
            }
            if self.done {
                return None;
            }
            let slot = &self.error;
            let step = match self.input.next() {
                Some(Ok(batch)) => self.windower.push(&batch).map_err(|e| external(e, slot)),
                Some(Err(e)) => Err(e),
                None => {
                    self.done = true;
                    self.windower.finish().map_err(|e| external(e, slot))
                }
            };
            match step {
                Ok(batches) => self.pending.extend(batches),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl RecordBatchReader for WindowReader {
    fn schema(&self) -> SchemaRef {
        SchemaRef::clone(&self.schema)
    }
}

/// An Arrow C stream handed to Python once (`__arrow_c_stream__`).
#[pyclass(module = "seqwin._seqwin")]
struct ArrowStream {
    stream: Mutex<Option<FFI_ArrowArrayStream>>,
    error: ErrorSlot,
}

#[pymethods]
impl ArrowStream {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema; // the schema is fixed by the configuration
        let stream = self
            .stream
            .lock()
            .map_err(|_| PyValueError::new_err("the window stream is unusable"))?
            .take()
            .ok_or_else(|| PyValueError::new_err("this window stream was already consumed"))?;
        PyCapsule::new_with_value(py, stream, STREAM)
    }

    /// The `SeqwinError` / `SeqwinIOError` that ended the stream, if seqwin
    /// (not the input stream) failed.
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let slot = self.error.lock().ok()?.clone();
        slot.map(|(message, code)| error(message, code).into_value(py).into_any())
    }
}

/// `windows(data, config_json)`: a lazy stream of windows over `data`.
#[pyfunction]
fn windows(data: &Bound<'_, PyAny>, config_json: &str) -> PyResult<ArrowStream> {
    let config: StreamConfig =
        serde_json::from_str(config_json).map_err(|e| error(format!("seqwin.windows: {e}"), 2))?;
    let input = import_stream(data)?;
    let windower = StreamWindower::new(&config, &input.schema()).map_err(seqwin_err)?;
    let reader = WindowReader {
        input,
        schema: windower.schema(),
        windower,
        pending: VecDeque::new(),
        done: false,
        error: ErrorSlot::default(),
    };
    Ok(ArrowStream {
        error: Arc::clone(&reader.error),
        stream: Mutex::new(Some(FFI_ArrowArrayStream::new(Box::new(reader)))),
    })
}

/// `assign_split(ids, split_json)`: the split name of each id (int or str).
#[pyfunction]
fn assign_split(ids: &Bound<'_, PyAny>, split_json: &str) -> PyResult<Vec<String>> {
    let config = serde_json::from_str(split_json)
        .map_err(|e| error(format!("seqwin.assign_split: {e}"), 2))?;
    let spec = seqwin::stream::split_spec(&config).map_err(seqwin_err)?;
    let mut out = Vec::new();
    for id in ids.try_iter()? {
        let id = id?;
        let index = if let Ok(s) = id.cast::<PyString>() {
            spec.assign(DocKey::Str(&s.to_cow()?))
        } else if let Ok(v) = id.extract::<i64>() {
            spec.assign(DocKey::Int(v))
        } else if let Ok(v) = id.extract::<u64>() {
            // Unsigned ids above i64::MAX hash their u64 bits, as in `seqwin run`.
            spec.assign(DocKey::Int(v as i64))
        } else {
            return Err(PyTypeError::new_err(format!(
                "document ids must be integers (64-bit) or strings, got {}",
                id.get_type().name()?
            )));
        };
        out.push(spec.names[index].clone());
    }
    Ok(out)
}

/// `run(pipeline_path, overrides, threads, progress)`: the CLI's `run`;
/// returns the manifest as JSON. The run goes on another thread while this
/// one, every 50 ms, lets Python handle signals (Ctrl-C in a terminal or a
/// notebook raises KeyboardInterrupt here; the run is then cancelled, cleans
/// up like an interrupted CLI run, and the KeyboardInterrupt is re-raised)
/// and calls `progress(rows_done, rows_total)` when given.
#[pyfunction]
#[pyo3(signature = (pipeline_path, overrides, threads=None, progress=None))]
fn run(
    py: Python<'_>,
    pipeline_path: PathBuf,
    overrides: Vec<String>,
    threads: Option<usize>,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let pipeline = Pipeline::load(&pipeline_path, &overrides).map_err(seqwin_err)?;
    let counter = Arc::new(ProgressCounter::default());
    let options = RunOptions {
        threads,
        progress: false,
        counter: Some(Arc::clone(&counter)),
    };
    let progress = progress.map(|p| p.unbind());
    let mut python_error: Option<PyErr> = None;
    let result = py.detach(|| {
        std::thread::scope(|s| {
            let running = s.spawn(|| pipeline.run(&options));
            let mut shown = (u64::MAX, u64::MAX);
            while !running.is_finished() {
                std::thread::sleep(std::time::Duration::from_millis(50));
                if python_error.is_some() {
                    // Until the run has noticed (it may not have armed yet).
                    seqwin::cancel::request(SIGINT);
                    continue;
                }
                let now = (
                    counter.rows.load(Ordering::Relaxed),
                    counter.total.load(Ordering::Relaxed),
                );
                let step = Python::attach(|py| -> PyResult<()> {
                    py.check_signals()?;
                    if let Some(cb) = &progress {
                        // Nothing to show before the source is open (its total known).
                        if now != shown && now.1 > 0 {
                            cb.call1(py, now)?;
                        }
                    }
                    Ok(())
                });
                shown = now;
                if let Err(e) = step {
                    python_error = Some(e);
                    seqwin::cancel::request(SIGINT);
                }
            }
            running.join()
        })
    });
    if let Some(e) = python_error {
        return Err(e);
    }
    let report = result
        .map_err(|_| error("internal error: the run panicked".into(), 1))?
        .map_err(seqwin_err)?;
    if let Some(cb) = &progress {
        let done = counter.total.load(Ordering::Relaxed);
        cb.call1(py, (done, done))?;
    }
    serde_json::to_string(&report.manifest).map_err(|e| error(e.to_string(), 1))
}

/// `window_defaults()`: every `windows:` key with its default (null when it
/// has none), as JSON: the Python API's keyword list and defaults.
#[pyfunction]
fn window_defaults() -> PyResult<String> {
    serde_json::to_string(&seqwin::config::WindowsConfig::defaults())
        .map_err(|e| error(e.to_string(), 1))
}

/// `main(argv)`: the `seqwin` command line (the wheel's console script);
/// `argv[0]` is the program name. Returns the exit code.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> i32 {
    py.detach(|| seqwin::cli::main_with_args(argv))
}

#[pymodule]
fn _seqwin(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SeqwinError", m.py().get_type::<SeqwinError>())?;
    m.add("SeqwinIOError", m.py().get_type::<SeqwinIOError>())?;
    m.add("__version__", seqwin::VERSION)?;
    m.add_class::<ArrowStream>()?;
    m.add_function(wrap_pyfunction!(windows, m)?)?;
    m.add_function(wrap_pyfunction!(assign_split, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(window_defaults, m)?)?;
    m.add_class::<loader::RowGroupReader>()?;
    m.add_class::<loader::Prefetch>()?;
    m.add_function(wrap_pyfunction!(loader::read_dataset_file, m)?)?;
    Ok(())
}
