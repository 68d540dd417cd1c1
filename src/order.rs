//! Row orders other than source order (docs/format.md §1.5): global shuffle and TBPTT.
//!
//! Both are an external permutation with a known sort key per row. Rows are
//! scattered by key range into bucket files (Arrow IPC, inside the staging
//! directory), then each bucket is read back alone, sorted by key and
//! written. Memory holds one bucket plus small per-bucket write buffers, and
//! is bounded by the budget, not by the dataset.
//!
//! * Shuffle: the key of window `i` of a partition is
//!   `SipHash24(seed, partition)(i)`, a uniformly random 64-bit value; sorting
//!   by it (ties broken by `i`) gives a uniformly random permutation, the same
//!   whatever the thread count. Buckets are ranges of the key space.
//! * TBPTT: the key is the output row `step · batch_size + lane`.

use std::fs::{File, OpenOptions};
use std::hash::Hasher;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt64Array};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_ord::sort::{lexsort_to_indices, SortColumn};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::concat::concat_batches;
use arrow_select::take::take_record_batch;
use siphasher::sip::SipHasher24;

use crate::error::{Error, Result};
use crate::window::Lanes;

/// Name of the sort-key column added to spilled batches.
const KEY: &str = "__seqwin_key";
/// Name of the tie-break column (window index) added to spilled batches.
const INDEX: &str = "__seqwin_index";

/// How output rows are keyed.
#[derive(Debug, Clone)]
pub enum Keying {
    /// Random keys from a seed and the partition's path.
    Shuffle {
        /// Hash key derived from the seed and partition.
        k0: u64,
        /// Second hash key.
        k1: u64,
    },
    /// TBPTT output row: `step · lanes + lane`.
    Tbptt(Lanes),
}

impl Keying {
    /// Shuffle keying for a partition.
    pub fn shuffle(seed: u64, partition: &str) -> Keying {
        let mut h = SipHasher24::new_with_keys(seed, 0x7365_7177_696e_5348);
        h.write(partition.as_bytes());
        Keying::Shuffle {
            k0: seed,
            k1: h.finish(),
        }
    }

    /// Key of the window with index `index` in the partition and stream start `start`.
    pub fn key(&self, index: u64, start: u64) -> u64 {
        match *self {
            Keying::Shuffle { k0, k1 } => {
                let mut h = SipHasher24::new_with_keys(k0, k1);
                h.write_u64(index);
                h.finish()
            }
            Keying::Tbptt(lanes) => lanes.row(start),
        }
    }

    /// Bucket of a key among `buckets`.
    pub fn bucket(&self, key: u64, buckets: usize) -> usize {
        match *self {
            Keying::Shuffle { .. } => ((key as u128 * buckets as u128) >> 64) as usize,
            Keying::Tbptt(lanes) => {
                ((key as u128 * buckets as u128) / lanes.rows().max(1) as u128) as usize
            }
        }
    }
}

/// The bucket files of one partition.
#[derive(Debug)]
pub struct Spill {
    dir: PathBuf,
    keying: Keying,
    buckets: usize,
    schema: SchemaRef,
    buffers: Vec<Vec<RecordBatch>>,
    buffered_bytes: usize,
}

impl Spill {
    /// Bucket files under `dir` for rows of `schema`. Rows wait in write
    /// buffers until [`Spill::flush`]; the run flushes every partition's
    /// buffers when their total exceeds its share of `shuffle.memory_mb`.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created.
    pub fn new(dir: PathBuf, keying: Keying, buckets: usize, schema: &SchemaRef) -> Result<Spill> {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(KEY, DataType::UInt64, false)));
        fields.push(Arc::new(Field::new(INDEX, DataType::UInt64, false)));
        Ok(Spill {
            dir,
            keying,
            buckets: buckets.max(1),
            schema: Arc::new(Schema::new(fields)),
            buffers: vec![Vec::new(); buckets.max(1)],
            buffered_bytes: 0,
        })
    }

    /// Splits a batch of rows (windows `first_index..`, with their stream
    /// starts) by bucket. Pure: runs on any thread.
    ///
    /// # Errors
    /// Only on Arrow failures (internal errors).
    pub fn scatter(
        keying: &Keying,
        buckets: usize,
        schema: &SchemaRef,
        batch: &RecordBatch,
        first_index: u64,
        starts: &[u64],
    ) -> Result<Vec<(usize, RecordBatch)>> {
        let internal = |e: arrow_schema::ArrowError| Error::Internal(e.to_string());
        let n = batch.num_rows();
        let keys: Vec<u64> = (0..n)
            .map(|i| keying.key(first_index + i as u64, starts[i]))
            .collect();
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(UInt64Array::from(keys.clone())));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            first_index..first_index + n as u64,
        )));
        let full = RecordBatch::try_new(Arc::clone(schema), columns).map_err(internal)?;
        let mut per_bucket: Vec<Vec<u32>> = vec![Vec::new(); buckets];
        for (i, &k) in keys.iter().enumerate() {
            per_bucket[keying.bucket(k, buckets).min(buckets - 1)].push(i as u32);
        }
        per_bucket
            .into_iter()
            .enumerate()
            .filter(|(_, idx)| !idx.is_empty())
            .map(|(b, idx)| {
                let idx = arrow_array::UInt32Array::from(idx);
                Ok((b, take_record_batch(&full, &idx).map_err(internal)?))
            })
            .collect()
    }

    /// The schema of spilled batches (output schema + key + index).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Buckets.
    pub fn buckets(&self) -> usize {
        self.buckets
    }

    /// The keying.
    pub fn keying(&self) -> &Keying {
        &self.keying
    }

    fn bucket_path(&self, b: usize) -> PathBuf {
        self.dir.join(format!("bucket-{b:05}.arrows"))
    }

    /// Adds scattered rows to the write buffers; returns the bytes added.
    pub fn push(&mut self, parts: Vec<(usize, RecordBatch)>) -> usize {
        let mut added = 0;
        for (b, batch) in parts {
            added += batch.get_array_memory_size();
            self.buffers[b].push(batch);
        }
        self.buffered_bytes += added;
        added
    }

    /// Writes every buffered batch to its bucket file (appending one IPC stream).
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Write`].
    pub fn flush(&mut self) -> Result<()> {
        for b in 0..self.buckets {
            if self.buffers[b].is_empty() {
                continue;
            }
            let path = self.bucket_path(b);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            let mut w =
                StreamWriter::try_new(BufWriter::with_capacity(1 << 20, file), &self.schema)
                    .map_err(|e| spill_error(&path, e))?;
            for batch in self.buffers[b].drain(..) {
                w.write(&batch).map_err(|e| spill_error(&path, e))?;
            }
            w.finish().map_err(|e| spill_error(&path, e))?;
            w.into_inner().map_err(|e| spill_error(&path, e))?;
        }
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Reads bucket `b` back, sorted by key (ties by window index), without
    /// the key and index columns.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Write`] if the bucket file cannot be read.
    pub fn read_sorted(&self, b: usize, output: &SchemaRef) -> Result<Option<RecordBatch>> {
        let path = self.bucket_path(b);
        let mut batches: Vec<RecordBatch> = Vec::new();
        if path.exists() {
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
            let mut reader = BufReader::new(file);
            // The file holds several IPC streams back to back.
            loop {
                let pos =
                    std::io::Seek::stream_position(&mut reader).map_err(|e| Error::io(&path, e))?;
                if pos >= len {
                    break;
                }
                let stream =
                    StreamReader::try_new(&mut reader, None).map_err(|e| spill_error(&path, e))?;
                for batch in stream {
                    batches.push(batch.map_err(|e| spill_error(&path, e))?);
                }
            }
        }
        batches.extend(self.buffers[b].iter().cloned());
        if batches.is_empty() {
            return Ok(None);
        }
        let internal = |e: arrow_schema::ArrowError| Error::Internal(e.to_string());
        let all = concat_batches(&self.schema, &batches).map_err(internal)?;
        drop(batches);
        let k = all.num_columns();
        let order = lexsort_to_indices(
            &[
                SortColumn {
                    values: Arc::clone(all.column(k - 2)),
                    options: None,
                },
                SortColumn {
                    values: Arc::clone(all.column(k - 1)),
                    options: None,
                },
            ],
            None,
        )
        .map_err(internal)?;
        let sorted = take_record_batch(&all, &order).map_err(internal)?;
        let columns = sorted.columns()[..k - 2].to_vec();
        Ok(Some(
            RecordBatch::try_new(Arc::clone(output), columns).map_err(internal)?,
        ))
    }

    /// Removes the bucket files.
    pub fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spill_error(path: &Path, e: arrow_schema::ArrowError) -> Error {
    match e {
        arrow_schema::ArrowError::IoError(_, io) => Error::io(path, io),
        other => Error::write(path, other),
    }
}
