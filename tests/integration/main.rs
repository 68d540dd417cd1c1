//! Integration tests: one binary, a module per topic, a shared harness.
//! Every test writes small Parquet fixtures into its own temp dir, runs the
//! real `seqwin` binary, and reads the output back.

mod harness;

mod account;
mod append;
mod append_order;
mod cli;
mod determinism;
mod errors;
mod faults;
mod long_documents;
mod memory;
mod mix;
mod ordering;
mod packing;
mod pipelines;
mod resources;
mod safety;
mod signals;
mod sources;
mod stream;
