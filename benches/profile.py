#!/usr/bin/env python3
"""Where seqwin's time goes, per benchmark case (issue 19): `perf record` with
DWARF call graphs, every CPU sample put in one category by its stack.

usage: benches/profile.py [--cases A,B,C,D] [--bin target/release/seqwin]
                          [--data /tmp/seqwin-bench] [--threads 2] [--freq 1999]

Cases and corpora are bench.py's (generated there if missing). Categories, the
first rule that matches a sample's stack wins:
  decode: decompress     zstd/snappy/... under the Parquet reader
  decode                 the Parquet reader (pages, levels, dictionary, lists)
  window cutting         seqwin::window (range checks, Windower, WindowRefs)
  fixed-size lists       materialize: copying windows into input/target buffers
  encode: compress       zstd under the column writers
  encode: statistics     min/max, page index, bloom filters
  encode: levels         definition/repetition levels of the list columns
  encode: values         value encoders (DELTA_BINARY_PACKED, PLAIN, ...)
  I/O read / I/O write   read/write system calls (page cache copies)
  page faults            first touch of fresh memory (kernel clear_page ...)
  allocator              malloc/free/munmap
  sync / scheduling      futex, rayon sleeping and stealing
  other                  start-up, routing, manifest, everything else
"page faults" is counted before the component that touched the memory, so
the components are their work on warm memory. Wall and CPU time come from
the same run; idle = 1 - CPU / (threads * wall) is time a thread waited.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (cases, corpora, pipeline files)

RULES = [  # (category, regex over the joined stack), first match wins
    ("page faults", r"clear_page|exc_page_fault|do_anonymous_page|handle_mm_fault"),
    ("I/O read", r"ksys_read|ksys_pread|vfs_read|filemap_read"),
    ("I/O write", r"ksys_write|vfs_write|ksys_pwrite"),
    ("decode: decompress", r"(ZSTD_|HUF_|FSE_|HIST_|snap|LZ4).*(read_unit|array_reader|SerializedPageReader|decode_row_group)"),
    ("encode: compress", r"ZSTD_|HUF_|FSE_|HIST_|zstd|lz4|snap"),
    ("allocator", r"\b(malloc|free|_int_free|_int_malloc|realloc|cfree|munmap|madvise|__rust_dealloc|sysmalloc)\b"),
    ("decode", r"read_unit|array_reader|SerializedPageReader|decode_row_group|ParquetRecordBatchReader"),
    ("fixed-size lists", r"materialize"),
    ("window cutting", r"seqwin::window::|seqwin::pipeline::prepare|seqwin::pipeline::route"),
    ("encode: statistics", r"[Ss]tatistics|update_min|update_max|ColumnIndex|OffsetIndex|page_index|[Bb]loom"),
    ("encode: levels", r"LevelInfoBuilder|compute_leaves|levels::|LevelEncoder|RleEncoder"),
    ("encode: values", r"encode_row_group|Encoder|write_mini_batch|ArrowColumnWriter"),
    ("I/O write", r"PartFile|append_to_row_group|SerializedFileWriter|BufWriter"),
    ("sync / scheduling", r"futex|schedule|rayon_core::sleep|rayon_core::registry|finish_task_switch|crossbeam"),
]
CATEGORIES = ["decode", "decode: decompress", "window cutting", "fixed-size lists", "encode: values",
              "encode: levels", "encode: statistics", "encode: compress", "I/O read", "I/O write",
              "page faults", "allocator", "sync / scheduling", "other"]


def classify(frames):
    joined = " ".join(frames)
    for cat, rx in RULES:
        if re.search(rx, joined):
            return cat
    return "other"


def samples(script_text):
    for block in script_text.split("\n\n"):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if len(lines) < 2:
            continue
        yield [re.sub(r"^[0-9a-f]+ ", "", ln) for ln in lines[1:]]


def profile(binary, yaml, threads, freq, workdir):
    data = os.path.join(workdir, "perf.data")
    cmd = ["perf", "record", "-q", "-F", str(freq), "--call-graph", "dwarf,16384", "-o", data,
           binary, "run", yaml, "--quiet", "--threads", str(threads)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso", "--no-inline"],
                          capture_output=True, text=True, check=True).stdout
    counts = Counter(classify(s) for s in samples(text))
    return wall, cpu, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="A,B,C,D")
    ap.add_argument("--bin", default=os.path.join(bench.REPO, "target", "release", "seqwin"))
    ap.add_argument("--data", default="/tmp/seqwin-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--freq", type=int, default=1999)
    a = ap.parse_args()
    cases = a.cases.split(",")
    bench.ensure_corpora(a.data, {bench.CASES[c][0] for c in cases})
    rows = []
    with tempfile.TemporaryDirectory(prefix="seqwin-profile-") as tmp:
        for c in cases:
            yaml = bench.pipeline(a.data, c, os.path.join(tmp, f"out_{c}"))
            load = os.getloadavg()[0]
            wall, cpu, counts = profile(a.bin, yaml, a.threads, a.freq, tmp)
            rows.append((c, wall, cpu, load, counts))
            print(f"case {c}: wall {wall:.2f} s (under perf), CPU {cpu:.2f} s, load {load:.2f}", file=sys.stderr)
    print("| category | " + " | ".join(f"case {c}" for c, *_ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for cat in CATEGORIES:
        cells = []
        for _, _, _, _, counts in rows:
            total = sum(counts.values()) or 1
            cells.append(f"{100 * counts.get(cat, 0) / total:.1f}%")
        print(f"| {cat} | " + " | ".join(cells) + " |")
    print("| wall s under perf (CPU s) | " + " | ".join(f"{w:.2f} ({cpu:.2f})" for _, w, cpu, _, _ in rows) + " |")
    print(f"| idle: 1 − CPU ÷ ({a.threads} × wall) | " +
          " | ".join(f"{100 * max(0.0, 1 - cpu / (a.threads * w)):.0f}%" for _, w, cpu, _, _ in rows) + " |")
    print("| load at start | " + " | ".join(f"{ld:.2f}" for _, _, _, ld, _ in rows) + " |")


if __name__ == "__main__":
    main()
