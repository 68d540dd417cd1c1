#!/usr/bin/env python3
"""End-to-end benchmark: seqwin against the hand-written baselines, side by side.

usage: benches/bench.py [--reps 5] [--cases A,B,C,D,E] [--data /tmp/seqwin-bench]
                        [--tools seqwin,seqwin-1t,seqwin-before,pyarrow,polars,duckdb] [--raw FILE]
       benches/bench.py --summarize [--raw FILE]

Cases (within-document windows unless noted; zstd level 1 everywhere):
  A  50 M tokens, seq_len 1024 / stride 1024
  B  50 M tokens, seq_len 2048 / stride 2048
  C   2 M tokens, seq_len  128 / stride    1   (1.74 M windows, 1.8 GB logical)
  D  50 M tokens, seq_len  128 / stride   64
  E  50 M tokens, packed with a separator, seq_len 2048 (seqwin only: the baselines do not pack)
  F 500 M tokens, case A's settings (scale; on demand: --cases F)

Corpora come from baselines/gen_corpus.py (seed 0). Every repetition runs each
(case, tool) once, rotating the tool order so that background load is spread
evenly; each run is timed with /usr/bin/time -v (wall, peak RSS) and its output
deleted after its size is recorded. `seqwin-1t` is seqwin with --threads 1 (for
the scaling ratio); `seqwin-before` runs the binary SEQWIN_BEFORE names (an
earlier build, to compare two versions in one run). The summary prints median wall time, input tokens/s, peak
RSS, output bytes, and each tool's wall time as a multiple of seqwin's.
"""
import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = sys.executable
BASE = os.path.join(HERE, "baselines")
CORPORA = {"2M": 2_000_000, "50M": 50_000_000, "500M": 500_000_000}
CASES = {  # name: (corpus, seq_len, stride, packed)
    "A": ("50M", 1024, 1024, False),
    "B": ("50M", 2048, 2048, False),
    "C": ("2M", 128, 1, False),
    "D": ("50M", 128, 64, False),
    "E": ("50M", 2048, 2048, True),
    "F": ("500M", 1024, 1024, False),
}
TOOLS = ["seqwin", "seqwin-1t", "seqwin-before", "pyarrow", "polars", "duckdb"]
AS_LIMIT = 20 << 30


def seqwin_bin():
    return os.path.join(REPO, "target", "release", "seqwin")


def corpus_path(data, name):
    return os.path.join(data, f"corpus_{name}.parquet")


def ensure_corpora(data, names):
    os.makedirs(data, exist_ok=True)
    for name in names:
        p = corpus_path(data, name)
        if not os.path.exists(p):
            subprocess.run([PY, os.path.join(BASE, "gen_corpus.py"), "--tokens", str(CORPORA[name]),
                            "--seed", "0", "--out", p], check=True)


def pipeline(data, case, out):
    corpus, L, S, packed = CASES[case]
    path = os.path.join(data, f"seqwin_{case}.yaml")
    pack = ", pack: true, separator: 50256" if packed else ""
    with open(path, "w") as f:
        f.write(f"source: {{path: {corpus_path(data, corpus)}, tokens: tokens}}\n"
                f"windows: {{seq_len: {L}, stride: {S}{pack}}}\n"
                f"sink: {{path: {out}, mode: overwrite}}\n")
    return path


def command(data, case, tool, out):
    corpus, L, S, _ = CASES[case]
    src = corpus_path(data, corpus)
    if tool == "seqwin":
        return [seqwin_bin(), "run", pipeline(data, case, out), "--quiet"]
    if tool == "seqwin-1t":
        return [seqwin_bin(), "run", pipeline(data, case, out), "--quiet", "--threads", "1"]
    if tool == "seqwin-before":
        # Another build (SEQWIN_BEFORE=path/to/seqwin), to compare two versions in one run.
        return [os.environ["SEQWIN_BEFORE"], "run", pipeline(data, case, out), "--quiet"]
    if tool == "pyarrow":
        return [PY, os.path.join(BASE, "baseline_pyarrow.py"), src, out, str(L), str(S), "--threads", "2",
                "--no-dictionary"]
    if tool == "polars":
        return [PY, os.path.join(BASE, "baseline_polars.py"), src, out, str(L), str(S), "--mode", "explode"]
    if tool == "duckdb":
        return [PY, os.path.join(BASE, "baseline_duckdb.py"), src, out, str(L), str(S)]
    raise ValueError(tool)


def applies(case, tool):
    if tool == "seqwin-before" and not os.environ.get("SEQWIN_BEFORE"):
        return False
    if CASES[case][3]:  # packing: seqwin only
        return tool.startswith("seqwin")
    if tool == "seqwin-1t":
        return case == "A"
    return True


def parse_time_v(text):
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    wall = sum(float(v) * 60 ** i for i, v in enumerate(reversed(m.group(1).split(":")))) if m else None
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    user = re.search(r"User time \(seconds\): (\S+)", text)
    sys_ = re.search(r"System time \(seconds\): (\S+)", text)
    return {"wall_s": wall, "maxrss_kb": int(rss.group(1)) if rss else None,
            "cpu_s": (float(user.group(1)) if user else 0) + (float(sys_.group(1)) if sys_ else 0)}


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            if f.endswith(".parquet"):
                total += os.path.getsize(os.path.join(root, f))
    return total


def run_one(data, case, tool):
    out = os.path.join(data, f"out_{case}_{tool}")
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["/usr/bin/time", "-v"] + command(data, case, tool, out)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT)))
        rec = parse_time_v(p.stderr)
        rec["rc"] = p.returncode
        rec["err"] = "" if p.returncode == 0 else p.stderr.split("\tCommand being timed")[0].strip()[-300:]
    except subprocess.TimeoutExpired:
        rec = {"rc": "timeout", "wall_s": time.time() - t0, "err": "timeout"}
    rec["out_bytes"] = dir_bytes(out)
    windows = None
    manifest = os.path.join(out, "_seqwin.json")
    if os.path.exists(manifest):
        windows = json.load(open(manifest))["totals"]["windows"]
    shutil.rmtree(out, ignore_errors=True)
    rec.update(case=case, tool=tool, windows=windows, load1=os.getloadavg()[0], ts=time.strftime("%H:%M:%S"))
    return rec


def case_meta(data, case):
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    corpus, L, S, packed = CASES[case]
    lens = pc.list_value_length(pq.read_table(corpus_path(data, corpus), columns=["tokens"])["tokens"])
    lens = lens.to_numpy(zero_copy_only=False).astype(np.int64)
    if packed:
        n = int((lens + 1).sum())
        windows = (n - L - 1) // S + 1
    else:
        windows = int(np.where(lens >= L + 1, (lens - L - 1) // S + 1, 0).sum())
    return {"kind": "case", "case": case, "tokens": int(lens.sum()), "seq_len": L, "stride": S,
            "packed": packed, "windows": windows}


def summarize(raw):
    recs = [json.loads(line) for line in open(raw)]
    meta = {r["case"]: r for r in recs if r.get("kind") == "case"}
    runs = [r for r in recs if r.get("kind") == "run"]
    lines = ["| case | tool | ok/runs | median wall s (min–max) | Mtok/s | peak RSS MiB | output MB | wall ÷ seqwin |",
             "|---|---|---|---|---|---|---|---|"]
    for case in CASES:
        if case not in meta:
            continue
        m = meta[case]
        seq = [r["wall_s"] for r in runs if r["case"] == case and r["tool"] == "seqwin" and r["rc"] == 0]
        seq_med = statistics.median(seq) if seq else None
        for tool in TOOLS:
            rs = [r for r in runs if r["case"] == case and r["tool"] == tool]
            if not rs:
                continue
            ok = [r for r in rs if r["rc"] == 0]
            if not ok:
                rss = max((r.get("maxrss_kb") or 0) for r in rs) / 1024
                lines.append(f"| {case} | {tool} | 0/{len(rs)} | failed: {rs[0]['err'][-60:]!r} | | {rss:.0f} | | |")
                continue
            w = [r["wall_s"] for r in ok]
            wm = statistics.median(w)
            rss = statistics.median(r["maxrss_kb"] for r in ok) / 1024
            out = statistics.median(r["out_bytes"] for r in ok) / 1e6
            ratio = f"{wm / seq_med:.2f}×" if seq_med else ""
            lines.append(f"| {case} | {tool} | {len(ok)}/{len(rs)} | {wm:.2f} ({min(w):.2f}–{max(w):.2f}) | "
                         f"{m['tokens'] / wm / 1e6:.0f} | {rss:.0f} | {out:.1f} | {ratio} |")
            bad = [r for r in ok if r.get("windows") not in (None, m["windows"])]
            if bad:
                lines.append(f"| {case} | {tool} | WRONG WINDOW COUNT {bad[0]['windows']} != {m['windows']} | | | | | |")
    hdr = ["| case | corpus tokens | seq_len | stride | packed | windows |", "|---|---|---|---|---|---|"]
    for case in CASES:
        if case in meta:
            m = meta[case]
            hdr.append(f"| {case} | {m['tokens']:,} | {m['seq_len']} | {m['stride']} | {m['packed']} | {m['windows']:,} |")
    loads = [r["load1"] for r in runs] or [0]
    return ("\n".join(hdr) + "\n\n" + "\n".join(lines) +
            f"\n\nrun-start 1-min load average: median {statistics.median(loads):.2f}, max {max(loads):.2f} ({len(runs)} runs)\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cases", default="A,B,C,D,E")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--data", default="/tmp/seqwin-bench")
    ap.add_argument("--raw", default=None, help="JSON lines of every run (default DATA/results.jsonl)")
    ap.add_argument("--summarize", action="store_true")
    ap.add_argument("--no-build", action="store_true", help="use target/release/seqwin as it is")
    a = ap.parse_args()
    raw = a.raw or os.path.join(a.data, "results.jsonl")
    if a.summarize:
        print(summarize(raw))
        return
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "seqwin"], cwd=REPO, check=True)
    cases = a.cases.split(",")
    tools = a.tools.split(",")
    ensure_corpora(a.data, {CASES[c][0] for c in cases})
    os.makedirs(os.path.dirname(os.path.abspath(raw)), exist_ok=True)
    with open(raw, "w") as f:
        for c in cases:
            f.write(json.dumps(case_meta(a.data, c)) + "\n")
        failed = set()
        for rep in range(a.reps):
            for c in cases:
                order = tools[rep % len(tools):] + tools[:rep % len(tools)]
                for t in order:
                    if not applies(c, t) or (c, t) in failed:
                        continue
                    r = run_one(a.data, c, t)
                    r.update(kind="run", rep=rep)
                    f.write(json.dumps(r) + "\n")
                    f.flush()
                    if r["rc"] != 0:
                        failed.add((c, t))
                    print(f"rep{rep} {c} {t:10s} rc={r['rc']} wall={r.get('wall_s') or 0:.2f}s "
                          f"rss={(r.get('maxrss_kb') or 0) / 1024:.0f}MiB out={r['out_bytes'] / 1e6:.1f}MB "
                          f"load={r['load1']:.2f} {r.get('err', '')[-80:]}", flush=True)
    print(summarize(raw))


if __name__ == "__main__":
    main()
