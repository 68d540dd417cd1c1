"""Per-sample cost and peak memory of reading seqwin windows in a training loop.

    python benches/loader_bench.py [--tokens 20000000] [--seq-len 1024] [--reps 3] [--dir /tmp/seqwin-loader-bench]

Writes (once) a packed corpus windowed by seqwin (non-overlapping windows of
the packed token stream, 512-row row groups) and the same token stream as a
flat int32 file, then runs each reader in its own process on the same
windows, ``--reps`` times, alternating the readers (the figures are wall
times on a possibly shared machine). It prints each reader's median µs per
sample (min–max), its median as a multiple of the memmap's, how many times
faster it is than HF ``datasets`` (numpy and torch formats), the largest
peak RSS of the reading (the process's peak above its RSS once the reader
is open, imports done; for the loader both epochs, its decoded blocks,
buffers and threads), and the load average before and after:

- numpy memmap, nanoGPT-style slicing (``data[i:i+L]``, ``data[i+1:i+1+L]``)
  at the window starts in a random permutation, batches of 32;
- ``seqwin.Loader``, shuffled, rank 0 of 1 and rank 1 of 8, batches of 32,
  blocks of 1 and 4 row groups, and from its local cache (exact shuffle;
  the cache is built in the warm-up epoch); the second epoch is timed;
- ``seqwin.WindowDataset``, ``ds[i]`` in a random permutation;
- HF ``datasets`` (Parquet), ``ds[list of 32]`` in a random permutation (the
  batched random access of a map-style DataLoader), in three output formats:
  numpy (its fastest), torch (what a trainer feeding a model sets) and the
  default Python lists (what the issue measured: 51 µs per sample).

Not a test: the figures depend on the machine; the README quotes one run.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

BATCH = 32


def status_mb(key):
    """VmRSS (now) or VmHWM (peak) of this process, in MB (per process, unlike
    ru_maxrss, which survives exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def start_rss():
    """This process's RSS now, in MB, and its peak reset to it: what reading
    costs from here is ``status_mb("VmHWM") - start``."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to VmRSS (Linux ≥ 4.0)
    return status_mb("VmRSS")


def prepare(d, tokens, seq_len):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import seqwin

    if (d / "out" / "_SUCCESS").exists():
        return
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lengths = rng.integers(200, 4000, size=tokens // 2000 + 1)
    lengths = lengths[np.cumsum(lengths) <= tokens]
    flat = (rng.zipf(1.2, size=int(lengths.sum())) % 50000 + 1).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    docs = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
    (d / "corpus").mkdir(exist_ok=True)
    pq.write_table(pa.table({"tokens": docs}), d / "corpus" / "a.parquet")
    (d / "p.yaml").write_text(
        f"""
source: {{path: corpus, tokens: tokens}}
windows: {{seq_len: {seq_len}, stride: {seq_len}, pack: true, separator: 0, vocab_size: 50001}}
sink: {{path: out, row_group_rows: 512}}
"""
    )
    cwd = os.getcwd()
    os.chdir(d)
    try:
        seqwin.run("p.yaml")
    finally:
        os.chdir(cwd)
    # The packed stream the windows were cut from: documents joined by the separator.
    stream = np.empty(len(flat) + len(lengths) - 1, dtype=np.int32)
    pos = 0
    for k, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        if k:
            stream[pos] = 0
            pos += 1
        stream[pos : pos + b - a] = flat[a:b]
        pos += b - a
    stream.tofile(d / "stream.int32")


def run_case(case, d, seq_len):
    import seqwin

    out = d / "out"
    windows = json.loads((out / "_seqwin.json").read_text())["totals"]["windows"]
    perm = np.random.default_rng(1).permutation(windows)
    samples = 0
    if case == "memmap":
        data = np.memmap(d / "stream.int32", dtype=np.int32, mode="r")
        check = seqwin.WindowDataset(out)[int(perm[0])]
        i = int(perm[0]) * seq_len
        assert np.array_equal(data[i : i + seq_len], check["input"]), "memmap and seqwin disagree"
        base = start_rss()
        t0 = time.perf_counter()
        for k in range(0, windows - BATCH + 1, BATCH):
            starts = perm[k : k + BATCH] * seq_len
            x = np.stack([data[i : i + seq_len] for i in starts])
            y = np.stack([data[i + 1 : i + 1 + seq_len] for i in starts])
            samples += len(x) + 0 * len(y)
    elif case.startswith("loader"):
        # loader_k{k}[_rank1_of_8]: blocks of k row groups; loader_cache: the
        # local cache's exact shuffle; one process or rank 1 of 8.
        rank, world = (1, 8) if case.endswith("of_8") else (0, 1)
        kind = case.split("_")[1]
        if kind == "cache":
            opts = {"cache_dir": d / "loader-cache"}
        else:
            opts = {"block_row_groups": int(kind[1:])}
        ld = seqwin.Loader(out, batch_size=BATCH, seed=0, rank=rank, world_size=world, **opts)
        base = start_rss()  # the files are open; both epochs count
        for batch in ld:  # epoch 0 warms up (allocator, threads); epoch 1 is timed
            pass
        ld.set_epoch(1)
        t0 = time.perf_counter()
        for batch in ld:
            samples += len(batch["input"])
    elif case == "window_dataset":
        ds = seqwin.WindowDataset(out)
        base = start_rss()
        t0 = time.perf_counter()
        for i in perm[:20000]:
            ds[int(i)]
            samples += 1
    elif case.startswith("hf_datasets"):
        import glob

        from datasets import load_dataset

        files = sorted(glob.glob(str(out / "**" / "*.parquet"), recursive=True))
        ds = load_dataset("parquet", data_files=files, split="train", cache_dir=str(d / "hf-cache"))
        fmt = case.removeprefix("hf_datasets").lstrip("_") or "numpy"
        if fmt != "python":
            ds = ds.with_format(fmt)
        base = start_rss()
        t0 = time.perf_counter()
        for k in range(0, min(windows, 8192 if fmt != "python" else 2048) - BATCH + 1, BATCH):
            b = ds[perm[k : k + BATCH].tolist()]
            samples += len(b["input"])
    seconds = time.perf_counter() - t0
    print(json.dumps({"case": case, "us_per_sample": 1e6 * seconds / samples, "samples": samples,
                      "peak_rss_mb_over_start": status_mb("VmHWM") - base}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=20_000_000)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--dir", default="/tmp/seqwin-loader-bench")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--case")
    a = p.parse_args()
    d = pathlib.Path(a.dir)
    if a.case:
        return run_case(a.case, d, a.seq_len)
    prepare(d, a.tokens, a.seq_len)
    # Warm the page cache, then one process per reader.
    for f in d.rglob("*"):
        if f.is_file():
            f.read_bytes()
    cases = ["memmap", "loader_k1", "loader_k4", "loader_k1_rank1_of_8", "loader_k4_rank1_of_8",
             "loader_cache", "loader_cache_rank1_of_8", "window_dataset", "hf_datasets",
             "hf_datasets_torch", "hf_datasets_python"]
    runs = {case: [] for case in cases}
    load_before = os.getloadavg()
    for _ in range(a.reps):
        for case in cases:
            res = subprocess.run(
                [sys.executable, __file__, "--dir", str(d), "--seq-len", str(a.seq_len), "--case", case],
                capture_output=True, text=True)
            if res.returncode:
                print(case, "failed:", res.stderr[-2000:])
                continue
            runs[case].append(json.loads(res.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()
    us = {case: sorted(r["us_per_sample"] for r in rs) for case, rs in runs.items() if rs}
    median = {case: float(np.median(v)) for case, v in us.items()}
    memmap = median.get("memmap", float("nan"))
    hf = {fmt: median.get(f"hf_datasets{fmt}", float("nan")) for fmt in ("", "_torch")}
    print(f"{'reader':<26}{'µs/sample (min–max)':>24}{'÷ memmap':>10}{'HF numpy ÷':>12}{'HF torch ÷':>12}"
          f"{'peak RSS over start (MB)':>27}")
    for case, v in us.items():
        spread = f"{median[case]:.1f} ({v[0]:.1f}–{v[-1]:.1f})"
        rss = max(r["peak_rss_mb_over_start"] for r in runs[case])
        print(f"{case:<26}{spread:>24}{median[case] / memmap:>9.2f}×{hf[''] / median[case]:>11.2f}×"
              f"{hf['_torch'] / median[case]:>11.2f}×{rss:>27.0f}")
    print("load average (1, 5, 15 min): before " + ", ".join(f"{x:.2f}" for x in load_before)
          + "; after " + ", ".join(f"{x:.2f}" for x in load_after) + f"; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
