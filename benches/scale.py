#!/usr/bin/env python3
"""Scale benchmark (issue 14): does memory, and do open files, stay flat as the
corpus grows? For each mode, runs `seqwin` on corpora of 1×, 4× and 16× a base
size and reports wall time, throughput, peak RSS (/usr/bin/time),
peak open file descriptors (sampled from /proc/PID/fd every 5 ms) and RSS at
k× divided by RSS at 1×.

usage: .venv/bin/python benches/scale.py [--base 8000000] [--modes within,pack,...] [--runs 3]
                                         [--data /tmp/seqwin-scale] [--bin target/release/seqwin]

Modes:
  within     list<int32> documents (gen_corpus.py), seq_len 1024, stride 1024
  pack       packed with a separator, seq_len 2048
  shuffle    packed + global shuffle, shuffle.memory_mb 64
  tbptt      tbptt batch_size 32, seq_len 128
  flat       one flat int32 token column, no id (one document)
  flat_id    a flat column with a document id column
  one_doc    a single list row holding the whole corpus (one document)
  stats      `seqwin stats` on the list corpus
  partitions the list corpus partitioned on a carried column with 300 values

Not a test: figures depend on the machine; compare RSS within one run.
"""
import argparse
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parents[1]
GEN = ROOT / "benches" / "baselines" / "gen_corpus.py"
MODES = ["within", "pack", "shuffle", "tbptt", "flat", "flat_id", "one_doc", "stats", "partitions"]


def corpus(data, kind, tokens):
    """Writes (once) the corpus of `kind` with about `tokens` tokens."""
    path = data / f"{kind}_{tokens}.parquet"
    if path.exists():
        return path
    lists = data / f"lists_{tokens}.parquet"
    if not lists.exists():
        subprocess.run([sys.executable, str(GEN), "--tokens", str(tokens), "--seed", "0", "--out", str(lists)],
                       check=True)
    if kind == "lists":
        return lists
    table = pq.read_table(lists)
    toks = table.column("tokens").combine_chunks()
    flat = toks.flatten()
    if kind == "flat":
        pq.write_table(pa.table({"tokens": flat}), path, row_group_size=1 << 20)
    elif kind == "flat_id":
        lengths = np.diff(toks.offsets.to_numpy())
        ids = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        pq.write_table(pa.table({"tokens": flat, "doc_id": ids}), path, row_group_size=1 << 20)
    elif kind == "one_doc":
        pq.write_table(pa.table({"tokens": pa.array([flat.to_numpy()], pa.list_(pa.int32()))}), path)
    elif kind == "buckets":
        n = table.num_rows
        bucket = pa.array([f"b{i % 300:03}" for i in range(n)])
        pq.write_table(table.append_column("bucket", bucket), path, row_group_size=1000)
    return path


def pipeline(data, mode, tokens):
    kind = {"flat": "flat", "flat_id": "flat_id", "one_doc": "one_doc", "partitions": "buckets"}.get(mode, "lists")
    src = corpus(data, kind, tokens)
    source = f"source: {{path: {src}, tokens: tokens"
    source += ", id: doc_id" if mode == "flat_id" else ""
    source += ", carry: [bucket]" if mode == "partitions" else ""
    source += "}\n"
    windows = {
        "within": "windows: {seq_len: 1024}\n",
        "pack": "windows: {seq_len: 2048, pack: true, separator: 50256}\n",
        "shuffle": "windows: {seq_len: 2048, pack: true, separator: 50256}\nshuffle: {seed: 1, memory_mb: 64}\n",
        "tbptt": "windows: {seq_len: 128}\ntbptt: {batch_size: 32}\n",
        "partitions": "windows: {seq_len: 1024}\n",
    }.get(mode, "windows: {seq_len: 1024}\n")
    sink = "sink: {path: OUT, mode: overwrite" + (", partition_by: [bucket]" if mode == "partitions" else "") + "}\n"
    p = data / f"{mode}_{tokens}.yaml"
    p.write_text(source + windows + sink.replace("OUT", str(data / f"out_{mode}")))
    return p


def measure(cmd):
    """Runs cmd under /usr/bin/time (a fork of this Python process would carry
    its RSS into the child's high-water mark); returns (exit code, wall s,
    peak RSS KiB, peak open fds of seqwin)."""
    t0 = time.time()
    child = subprocess.Popen(["/usr/bin/time", "-f", "MAXRSS %M", *cmd],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_fds = 0
    done = threading.Event()

    def sample():
        nonlocal peak_fds
        while not done.is_set():
            try:
                pids = pathlib.Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()
                for pid in pids:
                    peak_fds = max(peak_fds, len(os.listdir(f"/proc/{pid}/fd")))
            except OSError:
                pass
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = child.communicate()
    done.set()
    sampler.join()
    wall = time.time() - t0
    rss = int(err.strip().splitlines()[-1].split()[-1]) if "MAXRSS" in err else 0
    if child.returncode != 0:
        print(err[-300:], file=sys.stderr)
    return child.returncode, wall, rss, peak_fds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=int, default=8_000_000)
    ap.add_argument("--factors", default="1,4,16")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--data", default="/tmp/seqwin-scale")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "seqwin"))
    ap.add_argument("--runs", type=int, default=1,
                    help="runs per mode and size; the median peak RSS is compared (min–max shown)")
    a = ap.parse_args()
    data = pathlib.Path(a.data)
    data.mkdir(parents=True, exist_ok=True)
    factors = [int(f) for f in a.factors.split(",")]
    print("| mode | tokens | exit | wall s | M tokens/s | peak RSS MiB (min–max) | RSS ÷ RSS at 1× | peak open fds |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in a.modes.split(","):
        first = None
        for f in factors:
            tokens = a.base * f
            p = pipeline(data, mode, tokens)
            cmd = [a.bin, "stats", str(p)] if mode == "stats" else [a.bin, "run", str(p), "--quiet"]
            runs = []
            for _ in range(a.runs):
                runs.append(measure(cmd))
                # A 512M-token run writes 4 GB of windows: keep one output on disk at a time.
                shutil.rmtree(data / f"out_{mode}", ignore_errors=True)
            code = max(r[0] for r in runs)
            wall = float(np.median([r[1] for r in runs]))
            rsses = sorted(r[2] for r in runs)
            # One run's peak varies with thread scheduling (which decoded units and
            # encoded row groups happen to be alive at once): the median of several.
            rss = float(np.median(rsses))
            fds = max(r[3] for r in runs)
            first = first or rss
            spread = f" ({rsses[0] / 1024:.0f}–{rsses[-1] / 1024:.0f})" if a.runs > 1 else ""
            print(f"| {mode} | {tokens:,} | {code} | {wall:.2f} | {tokens / wall / 1e6:.1f} | {rss / 1024:.0f}{spread} | "
                  f"{rss / first:.2f} | {fds} |", flush=True)

if __name__ == "__main__":
    main()
