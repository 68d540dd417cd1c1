#![warn(missing_docs)]
//! # seqwin
//!
//! Turns tokenized corpora stored in Parquet into next-token-prediction
//! training windows: `input = tokens[s : s+seq_len]`,
//! `target = tokens[s+1 : s+seq_len+1]`, written as a hive-partitioned Parquet
//! dataset with `fixed_size_list` columns.
//!
//! The binary is a thin shell over this library:
//!
//! * [`Pipeline`] loads a pipeline file, validates it ([`plan::Plan`]) and
//!   runs it ([`Pipeline::run`]).
//! * [`window::windows`] is the pure kernel: an Arrow array of documents in,
//!   a `RecordBatch` of windows out, no files involved.
//!
//! ```
//! use arrow_array::cast::AsArray;
//! use arrow_array::types::{Int32Type, Int64Type};
//! use arrow_array::{Array, ListArray};
//! use seqwin::window::WindowSpec;
//!
//! // "helloworld", a=1 … z=26: 2 non-overlapping windows of 4.
//! let docs = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(
//!     [8, 5, 12, 12, 15, 23, 15, 18, 12, 4].map(Some),
//! )]);
//! let batch = seqwin::window::windows(&docs, &WindowSpec::new(4)).unwrap();
//! assert_eq!(batch.num_rows(), 2);
//! let targets = batch.column(1).as_fixed_size_list();
//! let second = targets.value(1);
//! assert_eq!(second.as_primitive::<Int32Type>().values(), &[23, 15, 18, 12]);
//! ```
//!
//! Cargo features: `cloud` (default) reads and writes `s3://`, `gs://` and
//! `az://` paths (`seqwin::store`); without it such a path is refused when the
//! pipeline is compiled ([`Error::CloudDisabled`]). `polars` adds
//! `seqwin::polars`.

pub mod cancel;
pub mod cli;
pub mod config;
pub mod error;
pub mod footer;
pub mod hive;
pub mod inspect;
pub mod location;
pub mod oom;
mod order;
pub mod pipeline;
pub mod plan;
#[cfg(feature = "polars")]
pub mod polars;
pub mod select;
mod sink;
mod source;
pub mod split;
pub mod stats;
#[cfg(feature = "cloud")]
pub mod store;
pub mod stream;
mod thrift;
pub mod window;

pub mod list_page {
    //! Token-list data pages decoded into one flat buffer (the readers' hot path).
    pub use crate::source::list_page::*;
}

/// The `_seqwin.json` manifest of a dataset.
pub mod manifest {
    pub use crate::sink::manifest::*;
}

/// How a run encodes its row groups, for benchmarks that must encode exactly
/// as a run does (`benches/floor.rs`).
pub mod encoding {
    pub use crate::sink::encode::{
        encode_row_group, row_group_encoder, writer_properties, EncodedColumn, RowGroupEncoder,
    };
}

pub use error::{Error, Result};
pub use pipeline::{Outcome, Pipeline, RunOptions, RunReport};

/// The seqwin version, recorded in every file and manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
