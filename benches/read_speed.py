#!/usr/bin/env python3
"""Read throughput of seqwin's output at training time (issue 19): pyarrow and
Polars reading the windows seqwin writes, beside the same windows written by
pyarrow as PLAIN + zstd(1) and PLAIN + lz4, in the same run.

usage: benches/read_speed.py [--cases A,C,D] [--reps 5] [--bin target/release/seqwin]
                             [--before OTHER_SEQWIN] [--data /tmp/seqwin-bench]

For each case (bench.py's corpora and geometry) seqwin writes its dataset;
pyarrow rewrites the same table with the same rows per row group, no
dictionary and no statistics on the window columns. Every repetition then
reads each copy, in rotating order:
  pyarrow      pq.read_table of the files (its default thread pool)
  pyarrow/rg   pq.ParquetFile(...).read_row_group one at a time, one thread
               (how a training loader fetches a few windows at a time)
  polars       pl.read_parquet of the files
Throughput is MB/s of window data: rows x seq_len x 4 bytes x 2 columns, per
second of median wall time. `--before` adds the output of another seqwin
build (to compare two encodings).
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def files_of(path):
    return sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))


def read_pyarrow(files):
    return pa.concat_tables([pq.read_table(f) for f in files]).num_rows


def read_pyarrow_rg(files):
    rows = 0
    for f in files:
        pf = pq.ParquetFile(f)
        for rg in range(pf.num_row_groups):
            rows += pf.read_row_group(rg, use_threads=False).num_rows
    return rows


def read_polars(files):
    return pl.read_parquet(files).height


READERS = {"pyarrow": read_pyarrow, "pyarrow/rg": read_pyarrow_rg, "polars": read_polars}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="A,C,D")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--bin", default=bench.seqwin_bin())
    ap.add_argument("--before", default=None)
    ap.add_argument("--data", default="/tmp/seqwin-bench")
    a = ap.parse_args()
    cases = a.cases.split(",")
    bench.ensure_corpora(a.data, {bench.CASES[c][0] for c in cases})
    print("| case | copy | MB on disk | pyarrow MB/s | pyarrow/rg MB/s | polars MB/s | load |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="seqwin-read-", dir=a.data) as tmp:
        for case in cases:
            _, seq_len, _, _ = bench.CASES[case]
            copies = {}
            binaries = [("seqwin", a.bin)] + ([("seqwin before", a.before)] if a.before else [])
            for name, binary in binaries:
                out = os.path.join(tmp, f"{case}_{name.replace(' ', '_')}")
                subprocess.run([binary, "run", bench.pipeline(a.data, case, out), "--quiet"], check=True)
                copies[name] = files_of(out)
            table = pa.concat_tables([pq.read_table(f) for f in copies["seqwin"]])
            rg_rows = pq.ParquetFile(copies["seqwin"][0]).metadata.row_group(0).num_rows
            for codec in ["zstd", "lz4"]:
                path = os.path.join(tmp, f"{case}_plain_{codec}.parquet")
                pq.write_table(table, path, compression=codec,
                               compression_level=1 if codec == "zstd" else None,
                               use_dictionary=False, write_statistics=False, row_group_size=rg_rows)
                copies[f"pyarrow PLAIN+{codec}"] = [path]
            window_mb = table.num_rows * seq_len * 4 * 2 / 1e6
            del table
            times = {(c, r): [] for c in copies for r in READERS}
            loads = []
            keys = list(times)
            for rep in range(a.reps):
                loads.append(os.getloadavg()[0])
                k = rep % len(keys)
                for copy, reader in keys[k:] + keys[:k]:
                    t0 = time.perf_counter()
                    READERS[reader](copies[copy])
                    times[(copy, reader)].append(time.perf_counter() - t0)
            load = f"{min(loads):.1f}–{max(loads):.1f}"
            for copy, files in copies.items():
                mb = sum(os.path.getsize(f) for f in files) / 1e6
                speeds = [f"{window_mb / statistics.median(times[(copy, r)]):.0f}" for r in READERS]
                print(f"| {case} | {copy} | {mb:.1f} | " + " | ".join(speeds) + f" | {load} |", flush=True)
            for files in copies.values():
                for f in files:
                    os.remove(f)


if __name__ == "__main__":
    main()
