"""Peak memory of `seqwin run` reading from s3:// (issue #7): a moto S3 server
on 127.0.0.1, corpora of 5 M, 50 M and 200 M tokens uploaded to it, each run
s3 -> local and s3 -> s3 with case A's settings (seq_len 1024, stride 1024),
timed with /usr/bin/time (peak RSS). Needs the .venv of scripts/test.sh and a
release build (cargo build --release).

    .venv/bin/python benches/s3_memory.py [--data /tmp/seqwin-s3mem]
"""
import argparse
import os
import subprocess
import time

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [5_000_000, 50_000_000, 200_000_000]
PER_FILE = 25_000_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/seqwin-s3mem")
    ap.add_argument("--port", type=int, default=5077)
    args = ap.parse_args()
    binary = os.environ.get("SEQWIN_BIN", os.path.join(REPO, "target", "release", "seqwin"))
    moto = os.path.join(REPO, ".venv", "bin", "moto_server")
    server = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(args.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(3)
        endpoint = f"http://127.0.0.1:{args.port}"
        creds = dict(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_REGION="us-east-1",
                   AWS_ENDPOINT_URL=endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
        s3.create_bucket(Bucket="mem")
        rng = np.random.default_rng(1)
        print("| tokens | sink | exit | peak RSS MB | wall s |\n|---|---|---|---|---|")
        for n in SIZES:
            d = os.path.join(args.data, f"c{n}")
            os.makedirs(d, exist_ok=True)
            for f in range(max(1, n // PER_FILE)):
                m = min(n, PER_FILE)
                lens = rng.integers(200, 1800, size=m // 1000 + 10)
                offs = np.concatenate([[0], np.cumsum(lens)])
                offs = offs[offs <= m].astype(np.int32)
                toks = rng.integers(0, 50257, size=int(offs[-1]), dtype=np.int32)
                path = os.path.join(d, f"part-{f:03}.parquet")
                table = pa.table({"tokens": pa.ListArray.from_arrays(pa.array(offs), pa.array(toks))})
                pq.write_table(table, path, row_group_size=4096)
                s3.upload_file(path, "mem", f"c{n}/part-{f:03}.parquet")
            for sink in [os.path.join(args.data, f"out{n}"), f"s3://mem/out{n}"]:
                pipeline = os.path.join(args.data, "p.yaml")
                with open(pipeline, "w") as fh:
                    fh.write(f"source: {{path: s3://mem/c{n}, tokens: tokens}}\n"
                             f"windows: {{seq_len: 1024, stride: 1024}}\n"
                             f"sink: {{path: {sink}, mode: overwrite}}\n")
                t = time.time()
                r = subprocess.run(["/usr/bin/time", "-f", "%M", binary, "run", pipeline, "--quiet"],
                                   env=env, capture_output=True, text=True)
                peak_mb = int(r.stderr.strip().splitlines()[-1]) / 1000
                kind = "local" if not sink.startswith("s3://") else "s3"
                print(f"| {n:,} | {kind} | {r.returncode} | {peak_mb:.0f} | {time.time() - t:.2f} |", flush=True)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
