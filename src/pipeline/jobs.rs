//! The units of work of a run's main pass: the rows waiting in each output
//! partition ([`Part`]), what the pass cuts from them — row groups to encode,
//! part files to close, windows to spill — and what the pool hands back
//! ([`Output`]); [`encode_job`] turns a row group job into encoded bytes.

use std::collections::VecDeque;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::blend::PartBlend;
use super::ordered::ScatteredPart;
use crate::error::Result;
use crate::order::{Keying, Spill};
use crate::sink::encode::RowGroupEncoder;
use crate::sink::{encode_row_group, EncodedRowGroup, PartFiles, RowGroupJob};
use crate::window::{materialize, OutputLayout, Token, TokenAccount, WindowRef, Windower};

/// Rows waiting to be written for a partition.
pub(super) enum Payload<T: Token> {
    /// Windows still to be materialised (source order).
    Windows(Vec<WindowRef<T>>),
    /// Rows read back from order buckets.
    Batch(RecordBatch),
}

/// A row group to encode.
pub(super) type Job<T> = RowGroupJob<Payload<T>>;

/// Row groups to encode and windows to spill, cut in one step.
pub(super) type Jobs<T> = (Vec<Cut<T>>, Vec<SpillJob<T>>);

/// What the main pass cuts, in the order results are appended.
pub(super) enum Cut<T: Token> {
    /// A row group to encode and append.
    Encode(Job<T>),
    /// Close a partition's part file (to keep [`MAX_OPEN_FILES`](crate::sink::MAX_OPEN_FILES) open).
    Close {
        /// The partition.
        part: usize,
        /// The file.
        file_seq: usize,
    },
}

/// Spill work: windows to materialise and scatter into buckets.
pub(super) struct SpillJob<T: Token> {
    pub(super) part: usize,
    pub(super) first_index: u64,
    pub(super) windows: Vec<WindowRef<T>>,
    /// A blend's positions of the windows.
    pub(super) positions: Option<Vec<u64>>,
    pub(super) keying: Keying,
    pub(super) schema: SchemaRef,
    pub(super) buckets: usize,
}

/// What a pool task hands back to the coordinator.
pub(super) enum Output {
    Encoded(EncodedRowGroup),
    Close { part: usize, file_seq: usize },
    Scattered(ScatteredPart),
}

/// One output partition during a run.
pub(super) struct Part<T: Token> {
    pub(super) windower: Windower<T>,
    /// Account of windows cut in workers (complete documents).
    pub(super) extra: TokenAccount,
    pub(super) queue: VecDeque<WindowRef<T>>,
    pub(super) files: PartFiles,
    pub(super) spill: Option<Spill>,
    pub(super) windows_spilled: u64,
    pub(super) batches: VecDeque<RecordBatch>,
    /// A blend's cursors, and the positions of the queued windows.
    pub(super) blend: Option<PartBlend>,
    pub(super) positions: VecDeque<u64>,
}

impl<T: Token> Part<T> {
    /// Queues windows of source `origin` (a blend gives each its position).
    ///
    /// # Errors
    /// [`Error::Internal`](crate::error::Error::Internal) if a blend's source cuts more windows than counted.
    pub(super) fn enqueue(&mut self, windows: Vec<WindowRef<T>>, origin: usize) -> Result<()> {
        if let Some(blend) = &mut self.blend {
            self.positions
                .extend(blend.positions(origin, windows.len())?);
        }
        self.queue.extend(windows);
        Ok(())
    }
}

pub(super) fn encode_job<T: Token>(
    job: Job<T>,
    factory: &RowGroupEncoder,
    layout: &OutputLayout,
    carry: &[usize],
) -> Result<EncodedRowGroup> {
    let batch = match job.payload {
        Payload::Windows(w) => materialize(&w, layout, carry)?,
        Payload::Batch(b) => b,
    };
    let chunks = encode_row_group(factory, job.row_group, &batch, &job.name)?;
    Ok(EncodedRowGroup {
        part: job.part,
        file_seq: job.file_seq,
        close_after: job.close_after,
        rows: batch.num_rows(),
        chunks,
    })
}
