#!/usr/bin/env python3
"""Runs every pipeline in pipelines/ and a set of fixture pipelines (one per
mode: windows within documents, overlap + padding, packing + shuffle + split,
TBPTT, flat streams with and without ids, other dtypes and list kinds, hive
inputs, many partitions) with two seqwin binaries and compares the outputs
file by file: every Parquet file byte for byte, the manifest without its
wall-time field.

    .venv/bin/python scripts/compare-outputs.py OLD_BINARY NEW_BINARY [--threads 1,2]

Exit code 0 when every output is identical, 1 otherwise (the differing files
are listed). Used to check that a refactoring changes no output byte.
"""
import argparse
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parents[1]


def docs(count, max_len, vocab, seed):
    x = (seed * 0x9E3779B97F4A7C15 | 1) & (2**64 - 1)
    out = []

    def nxt():
        nonlocal x
        x ^= (x << 13) & (2**64 - 1)
        x ^= x >> 7
        x ^= (x << 17) & (2**64 - 1)
        return x

    for _ in range(count):
        n = nxt() % max_len
        out.append([nxt() % vocab for _ in range(n)])
    return out


def fixtures(root):
    """Writes the fixture corpora; returns {name: pipeline yaml}."""
    d = docs(400, 300, 1000, 7)
    table = pa.table(
        {
            "doc_id": pa.array(range(len(d)), pa.int64()),
            "source": pa.array([["web", "a/b=c%d e", "café", "books"][i % 4] for i in range(len(d))]),
            "tokens": pa.array(d, pa.list_(pa.int32())),
        }
    )
    (root / "corpus").mkdir()
    pq.write_table(table.slice(0, 150), root / "corpus" / "a.parquet", row_group_size=40)
    pq.write_table(table.slice(150), root / "corpus" / "b.parquet", row_group_size=70)
    big = pa.table({"tokens": pa.array(d, pa.large_list(pa.uint16())), "doc_id": pa.array([f"d{i}" for i in range(len(d))])})
    pq.write_table(big, root / "large.parquet", row_group_size=64)
    flat_tokens = [t for doc in d[:120] for t in doc]
    flat_ids = [i for i, doc in enumerate(d[:120]) for _ in doc]
    pq.write_table(
        pa.table({"tok": pa.array(flat_tokens, pa.int64()), "id": pa.array(flat_ids, pa.int64()),
                  "lang": pa.array([["en", "fr", "de"][i % 3] for i in flat_ids])}),
        root / "flat.parquet", row_group_size=1000,
    )
    for lang in ["en", "fr"]:
        (root / "hive" / f"lang={lang}").mkdir(parents=True)
        pq.write_table(table.slice(0 if lang == "en" else 200, 100), root / "hive" / f"lang={lang}" / "x.parquet", row_group_size=33)
    many = pa.table({"tokens": pa.array(d, pa.list_(pa.int32())), "bucket": pa.array([f"b{i % 37}" for i in range(len(d))])})
    pq.write_table(many, root / "many.parquet", row_group_size=50)
    src = "source: {path: corpus, tokens: tokens, id: doc_id, carry: [source]}\n"
    return {
        "within": src + "windows: {seq_len: 16}\nsink: {path: out}\n",
        "overlap_pad": src + "windows: {seq_len: 16, stride: 5, remainder: pad, columns: [doc_id, start]}\nsplit: {fractions: {train: 0.7, val: 0.3}, seed: 3}\nsink: {path: out, partition_by: [split, source], row_group_rows: 50, max_rows_per_file: 120}\n",
        "stride1": src + "windows: {seq_len: 8, stride: 1, dtype: int64, columns: [start]}\nsink: {path: out, compression: snappy, row_group_rows: 999}\n",
        "pack_shuffle": src + "windows: {seq_len: 32, pack: true, separator: 999, remainder: pad, vocab_size: 1000, columns: [doc_id, start, position_ids, segment_ids, loss_mask]}\nsplit: {fractions: {train: 0.8, val: 0.2}}\nshuffle: {seed: 5, memory_mb: 1}\nsink: {path: out, partition_by: [split], row_group_rows: 30, max_rows_per_file: 100}\n",
        "pack_plain": src + "windows: {seq_len: 20, stride: 7, pack: true}\nsink: {path: out, partition_by: [source]}\n",
        "tbptt": src + "windows: {seq_len: 12, separator: 999, columns: [start]}\ntbptt: {batch_size: 3}\nsplit: {fractions: {a: 0.5, b: 0.5}}\nsink: {path: out, partition_by: [split], row_group_rows: 7}\n",
        "large_list_uint16": "source: {path: large.parquet, tokens: tokens, id: doc_id}\nwindows: {seq_len: 10, stride: 10, dtype: uint16, remainder: pad, ignore_index: 65535, columns: [doc_id]}\nsplit: {fractions: {train: 0.9, val: 0.1}}\nsink: {path: out, partition_by: [split], compression: none}\n",
        "flat_no_id": "source: {path: flat.parquet, tokens: tok}\nwindows: {seq_len: 64, stride: 50, remainder: pad, columns: [doc_id, start]}\nsink: {path: out, row_group_rows: 40}\n",
        "flat_id": "source: {path: flat.parquet, tokens: tok, id: id, carry: [lang]}\nwindows: {seq_len: 9, columns: [doc_id, start]}\nsplit: {fractions: {train: 0.6, val: 0.4}}\nsink: {path: out, partition_by: [split, lang]}\n",
        "flat_id_pack": "source: {path: flat.parquet, tokens: tok, id: id}\nwindows: {seq_len: 9, pack: true, separator: 1000, columns: [segment_ids, position_ids]}\nsink: {path: out, compression: 'zstd(3)'}\n",
        "hive": "source: {path: 'hive/*/*.parquet', tokens: tokens, id: doc_id, carry: [lang]}\nwindows: {seq_len: 16, stride: 8}\nsink: {path: out, partition_by: [lang]}\n",
        "many_partitions": "source: {path: many.parquet, tokens: tokens, carry: [bucket]}\nwindows: {seq_len: 4, stride: 3}\nshuffle: {seed: 1}\nsink: {path: out, partition_by: [bucket], row_group_rows: 16, max_rows_per_file: 40}\n",
    }


def digest(out):
    """{relative path: sha256} of a dataset; the manifest and its copies in
    the commit log (`_seqwin_log/`) without elapsed time."""
    result = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(out))
        if rel == "_seqwin.json" or rel.startswith("_seqwin_log/"):
            m = json.loads(p.read_text())
            m.pop("elapsed_seconds", None)
            m.get("config", {}).get("sink", {}).pop("path", None)  # each binary writes its own sink
            # Per-file CRC-32 is recorded since the version after the layout
            # refactoring; the data files themselves are compared byte for byte.
            for part in m.get("partitions", []):
                for f in part.get("files", []):
                    f.pop("crc32", None)
            data = json.dumps(m, sort_keys=True).encode()
        else:
            data = p.read_bytes()
        result[rel] = hashlib.sha256(data).hexdigest()
    return result


def run(binary, work, pipeline, threads, sink):
    cmd = [binary, "run", str(pipeline), "--quiet", "--set", f"sink.path={sink}", "--set", "sink.mode=overwrite"]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    return out.returncode, out.stderr.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    args.old, args.new = (str(pathlib.Path(b).resolve()) for b in (args.old, args.new))
    threads = [int(t) for t in args.threads.split(",")]
    failures = []
    compared = 0
    with tempfile.TemporaryDirectory(prefix="seqwin-compare-") as tmp:
        tmp = pathlib.Path(tmp)
        fx = tmp / "fixtures"
        fx.mkdir()
        cases = []
        for name, yaml in fixtures(fx).items():
            (fx / f"{name}.yaml").write_text(yaml)
            cases.append((name, fx, fx / f"{name}.yaml"))
        for p in sorted((ROOT / "pipelines").glob("*.yaml")):
            cases.append((f"pipelines/{p.name}", p.parent, p))
        for name, work, pipeline in cases:
            for t in threads:
                outs = {}
                for label, binary in (("old", args.old), ("new", args.new)):
                    sink = tmp / "out" / label / name.replace("/", "_") / f"t{t}"
                    sink.parent.mkdir(parents=True, exist_ok=True)
                    code, err = run(binary, work, pipeline, t, sink)
                    outs[label] = (code, err, digest(sink) if code == 0 else {})
                (oc, oe, od), (nc, ne, nd) = outs["old"], outs["new"]
                compared += 1
                if (oc, od) != (nc, nd) or (oc != 0 and oe != ne):
                    diff = sorted(k for k in set(od) | set(nd) if od.get(k) != nd.get(k))
                    failures.append(f"{name} threads={t}: exit {oc} vs {nc}; differing files: {diff[:10]}; stderr old={oe!r} new={ne!r}")
                else:
                    print(f"same  {name:<40} threads={t}  {len(od)} files  exit {oc} {oe[:80]}")
    if failures:
        print("\nDIFFERENCES:")
        for f in failures:
            print("  " + f)
        return 1
    print(f"\nall {compared} runs byte-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
