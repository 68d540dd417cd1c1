//! The rolling part-file writer, one type for every row order: row groups
//! are cut from a partition's rows in order, encoded on any thread, and
//! appended to `part-NNNNN.parquet` files that roll over at
//! `sink.max_rows_per_file`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use super::encode::{EncodedColumn, RowGroupEncoder};
use super::local::create_dir_all;
use super::manifest::FileEntry;
use super::Dest;
use crate::error::{Error, Result};
use crate::hive::part_file_name;

/// The byte sink of one output file (behind one `BufWriter`, so that the
/// writer's many small writes reach a file or an upload in 1 MiB pieces),
/// with the CRC-32 of every byte written, recorded in the manifest.
struct PartSink {
    to: SinkTo,
    crc: crc32fast::Hasher,
}

enum SinkTo {
    File(File),
    Store(super::remote::Upload),
}

impl Write for PartSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.to {
            SinkTo::File(f) => f.write(buf)?,
            SinkTo::Store(u) => u.write(buf)?,
        };
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.to {
            SinkTo::File(f) => f.flush(),
            SinkTo::Store(u) => u.flush(),
        }
    }
}

/// An output file being written; row groups are encoded elsewhere and appended in order.
pub struct PartFile {
    /// Path relative to the dataset root.
    pub name: String,
    path: PathBuf,
    writer: SerializedFileWriter<BufWriter<PartSink>>,
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
                (name, path, SinkTo::File(file))
            }
            Dest::Store(d) => {
                let (name, path, upload) = d.create(&name)?;
                (name, path, SinkTo::Store(upload))
            }
        };
        let options = ArrowWriterOptions::new().with_properties(props.clone());
        let sink = BufWriter::with_capacity(
            1 << 20,
            PartSink {
                to: sink,
                crc: crc32fast::Hasher::new(),
            },
        );
        let writer = ArrowWriter::try_new_with_options(sink, Arc::clone(schema), options)
            .map_err(|e| Error::write(&path, e))?;
        let (writer, _) = writer
            .into_serialized_writer()
            .map_err(|e| Error::write(&path, e))?;
        Ok(PartFile {
            name,
            path,
            writer,
            rows: 0,
        })
    }

    /// Appends an encoded row group.
    ///
    /// # Errors
    /// [`Error::Write`] (including I/O errors such as a full disk).
    pub fn append(&mut self, chunks: Vec<EncodedColumn>, rows: usize) -> Result<()> {
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
        let sink = self.writer.inner_mut().get_mut();
        if let SinkTo::Store(upload) = &mut sink.to {
            upload.finish().map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(FileEntry {
            name: self.name,
            rows: self.rows,
            bytes,
            crc32: Some(format!("{:08x}", sink.crc.clone().finalize())),
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

/// The most part files a run keeps open at once, over all partitions. A
/// partition whose file is closed to make room continues in a new part file,
/// so rows and their order within each partition never change; which file
/// closes is decided in source order, so the files are the same whatever the
/// thread count. (Each open file on an object store also holds up to
/// `PARTS_IN_FLIGHT + 1` upload parts of 8 MiB.)
pub const MAX_OPEN_FILES: usize = 16;

/// How many of the available rows a cut takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Whole row groups only; the rest waits for more rows.
    Full,
    /// Also one short row group of the rest; its file stays open (the
    /// run's queued windows exceeded their memory budget).
    Flush,
    /// Everything; the file is closed after the last row group.
    All,
}

/// The partitions whose current part file is open (from the cut of its first
/// row group to the cut of its last), least recently used first: at most
/// `limit` of them.
#[derive(Debug)]
pub struct OpenFiles {
    limit: usize,
    /// `(partition, tick of its last cut)`.
    open: Vec<(usize, u64)>,
    tick: u64,
}

impl OpenFiles {
    /// At most `limit` (at least 1) files open at once.
    pub fn new(limit: usize) -> OpenFiles {
        OpenFiles {
            limit: limit.max(1),
            open: Vec::new(),
            tick: 0,
        }
    }

    /// Before `files` cuts `available` rows: when the cut starts a file and
    /// `limit` files are open, the least recently used partitions to close
    /// first (they are no longer counted as open).
    pub fn admit(&mut self, files: &PartFiles, available: usize, take: Take) -> Vec<usize> {
        let mut evicted = Vec::new();
        if files.current || !files.would_cut(available, take) {
            return evicted;
        }
        while self.open.len() >= self.limit {
            let lru = (0..self.open.len())
                .min_by_key(|&k| self.open[k].1)
                .expect("open is not empty");
            evicted.push(self.open.swap_remove(lru).0);
        }
        evicted
    }

    /// After a cut of `files`: its partition counts as open while its file is.
    pub fn record(&mut self, files: &PartFiles) {
        self.tick += 1;
        let slot = self.open.iter().position(|(p, _)| *p == files.part);
        match (slot, files.current) {
            (Some(k), true) => self.open[k].1 = self.tick,
            (None, true) => self.open.push((files.part, self.tick)),
            (Some(k), false) => {
                self.open.swap_remove(k);
            }
            (None, false) => {}
        }
    }
}

/// What every part file of a run shares: where files go, the schema and
/// writer properties, the row-group encoder factory, and the sizes.
pub struct WriteSettings {
    /// Where files are created.
    pub dest: Dest,
    /// The output schema.
    pub schema: SchemaRef,
    /// Writer properties.
    pub props: WriterProperties,
    /// Builds the column writers of a row group on any thread. It depends
    /// only on the schema and properties, so no file has to be open to
    /// encode a row group.
    pub factory: Arc<RowGroupEncoder>,
    /// Windows per row group.
    pub row_group_rows: usize,
    /// Windows per file.
    pub max_rows_per_file: u64,
}

impl WriteSettings {
    /// Settings for files of `schema` written with `props` below `dest`.
    ///
    /// # Errors
    /// [`Error::Write`] if the writer refuses the schema or properties.
    pub fn new(
        dest: Dest,
        schema: SchemaRef,
        props: WriterProperties,
        row_group_rows: usize,
        max_rows_per_file: u64,
    ) -> Result<WriteSettings> {
        let factory = RowGroupEncoder::try_new(&schema, &props)?;
        Ok(WriteSettings {
            dest,
            schema,
            props,
            factory: Arc::new(factory),
            row_group_rows,
            max_rows_per_file,
        })
    }
}

/// A row group cut from a partition's rows, to be encoded on any thread and
/// appended in the order it was cut. `P` holds the rows.
pub struct RowGroupJob<P> {
    /// The partition's index in the run.
    pub part: usize,
    /// The file's sequence number within the partition.
    pub file_seq: usize,
    /// The row group's index within the file.
    pub row_group: usize,
    /// Whether the file is complete after this row group.
    pub close_after: bool,
    /// The file name, for messages.
    pub name: String,
    /// The rows.
    pub payload: P,
}

/// An encoded row group, ready to append.
pub struct EncodedRowGroup {
    /// The partition's index in the run.
    pub part: usize,
    /// The file's sequence number within the partition.
    pub file_seq: usize,
    /// Whether the file is complete after this row group.
    pub close_after: bool,
    /// Rows in the row group.
    pub rows: usize,
    /// The encoded column chunks.
    pub chunks: Vec<EncodedColumn>,
}

/// The part files of one output partition: cuts row groups and rolls files
/// at `max_rows_per_file`. A file is opened when its first encoded row group
/// is appended and closed after its last, so a partition holds at most one
/// open file, however many row groups are in flight.
pub struct PartFiles {
    part: usize,
    dir: String,
    settings: Arc<WriteSettings>,
    /// Files started by [`PartFiles::cut`].
    started: usize,
    /// The file being appended to, with its sequence number.
    open: Option<(usize, PartFile)>,
    done: Vec<FileEntry>,
    /// Rows cut into the current file.
    planned: u64,
    row_groups: usize,
    /// A file has been started and not yet cut to its end.
    current: bool,
}

impl PartFiles {
    /// The files of partition `part` in directory `dir` (empty: the root),
    /// numbered from `first_seq` (0, or after a dataset's files when appending).
    pub fn new(
        part: usize,
        dir: &str,
        settings: Arc<WriteSettings>,
        first_seq: usize,
    ) -> PartFiles {
        PartFiles {
            part,
            dir: dir.to_string(),
            settings,
            started: first_seq,
            open: None,
            done: Vec::new(),
            planned: 0,
            row_groups: 0,
            current: false,
        }
    }

    /// Whether [`PartFiles::cut`] would cut a row group from `available` rows.
    fn would_cut(&self, available: usize, take: Take) -> bool {
        let planned = if self.current { self.planned } else { 0 };
        let size =
            (self.settings.row_group_rows as u64).min(self.settings.max_rows_per_file - planned);
        available > 0 && (available as u64 >= size || take != Take::Full)
    }

    /// Ends the file being cut (the next row group starts a new file);
    /// returns its sequence number, to close it with
    /// [`PartFiles::close_file`] after its last row group is appended.
    pub fn end_current(&mut self) -> Option<usize> {
        std::mem::take(&mut self.current).then(|| self.started - 1)
    }

    /// Closes file `file_seq` if it is open (it was ended by
    /// [`PartFiles::end_current`]).
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Write`].
    pub fn close_file(&mut self, file_seq: usize) -> Result<()> {
        if self.open.as_ref().is_some_and(|(seq, _)| *seq == file_seq) {
            let (_, file) = self.open.take().expect("checked");
            self.done.push(file.close()?);
        }
        Ok(())
    }

    /// Cuts row groups while enough rows are available (the rest too unless
    /// [`Take::Full`]); `take_rows(n)` removes the first `n` rows.
    ///
    /// # Errors
    /// Whatever `take` returns.
    pub fn cut<P>(
        &mut self,
        mut available: usize,
        take: Take,
        take_rows: &mut dyn FnMut(usize) -> Result<P>,
        out: &mut Vec<RowGroupJob<P>>,
    ) -> Result<()> {
        let s = &self.settings;
        loop {
            let planned = if self.current { self.planned } else { 0 };
            let size = (s.row_group_rows as u64).min(s.max_rows_per_file - planned) as usize;
            if available == 0 || (available < size && take == Take::Full) {
                return Ok(());
            }
            let n = size.min(available);
            if !self.current {
                self.started += 1;
                self.current = true;
                self.planned = 0;
                self.row_groups = 0;
            }
            available -= n;
            self.planned += n as u64;
            let close_after =
                self.planned == s.max_rows_per_file || (take == Take::All && available == 0);
            let file_seq = self.started - 1;
            out.push(RowGroupJob {
                part: self.part,
                file_seq,
                row_group: self.row_groups,
                close_after,
                name: s.dest.file_name(&part_file_name(&self.dir, file_seq)),
                payload: take_rows(n)?,
            });
            self.row_groups += 1;
            if close_after {
                self.current = false;
            }
        }
    }

    /// Appends an encoded row group (in the order the row groups were cut),
    /// opening its file first if it is the file's first row group.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Write`].
    pub fn append(&mut self, e: EncodedRowGroup) -> Result<()> {
        if self.open.as_ref().is_none_or(|(seq, _)| *seq != e.file_seq) {
            if let Some((_, previous)) = self.open.take() {
                self.done.push(previous.close()?);
            }
            let s = &self.settings;
            let name = part_file_name(&self.dir, e.file_seq);
            let file = PartFile::create(&s.dest, name, &s.schema, &s.props)?;
            self.open = Some((e.file_seq, file));
        }
        let (_, file) = self.open.as_mut().expect("opened above");
        file.append(e.chunks, e.rows)?;
        if e.close_after {
            let (_, file) = self.open.take().expect("open");
            self.done.push(file.close()?);
        }
        Ok(())
    }

    /// Closes the file still open (the partition ended exactly at the end of
    /// a row group that was not marked as the file's last).
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Write`].
    pub fn close_open(&mut self) -> Result<()> {
        if let Some((_, file)) = self.open.take() {
            self.done.push(file.close()?);
        }
        self.current = false;
        Ok(())
    }

    /// The manifest entries of the closed files, in order.
    pub fn take_entries(&mut self) -> Vec<FileEntry> {
        std::mem::take(&mut self.done)
    }
}
