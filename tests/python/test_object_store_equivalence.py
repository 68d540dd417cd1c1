"""Runs through object stores write the same dataset as a local run: S3 and
Azure as source and sink (`store` fixture), gs:// as a source only. The
emulators and their fixtures are those of test_object_store.py."""
import json
import pathlib

import pytest

from conftest import SEQ_LEN
from test_object_store import (  # noqa: F401 (azure, gcs, s3, store: fixtures)
    BUCKET,
    PIPELINE,
    azure,
    gcs,
    s3,
    seqwin,
    store,
    write_corpus,
)


def manifest_figures(m):
    return {
        "partitions": m["partitions"],
        "totals": m["totals"],
        "schema": m["schema"],
        "partition_by": m["partition_by"],
        "inputs": [(pathlib.PurePosixPath(i["path"]).name, i["bytes"], i["rows"]) for i in m["inputs"]],
    }


def files_under(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_same_dataset(got, expected, source_prefix):
    """`got` ({name: bytes}) holds the dataset `expected` holds: the same
    names (hive escapes included), the same Parquet bytes, an empty
    `_SUCCESS` and the same manifest figures (paths and elapsed time aside)."""
    assert sorted(got) == sorted(expected)
    assert any("%2F" in k for k in expected), "a partition value that needs escaping"
    for name, data in expected.items():
        if name.endswith(".parquet"):
            assert got[name] == data, name
    assert got["_SUCCESS"] == b""
    m_got = json.loads(got["_seqwin.json"])
    assert manifest_figures(m_got) == manifest_figures(json.loads(expected["_seqwin.json"]))
    assert m_got["inputs"][0]["path"].startswith(f"{source_prefix}/part=0/")


def run_pipelines(tmp_path, env, shuffle, runs):
    """Runs PIPELINE once for each (name, source, sink), in order."""
    for name, source, sink in runs:
        (tmp_path / f"{name}.yaml").write_text(
            PIPELINE.format(source=source, sink=sink, mode="error", seq_len=SEQ_LEN, shuffle=shuffle)
        )
        r = seqwin(["run", f"{name}.yaml", "--quiet"], tmp_path, env)
        assert r.returncode == 0, r.stderr


SHUFFLES = pytest.mark.parametrize("shuffle", ["null", "{seed: 3}"], ids=["source-order", "shuffled"])


@SHUFFLES
def test_store_to_store_equals_a_local_run(tmp_path, store, shuffle):
    write_corpus(tmp_path)
    prefix = f"runs/{shuffle != 'null'}"
    store.upload_dir(tmp_path / "data", f"{prefix}/corpus")
    url = f"{store.scheme}://{BUCKET}/{prefix}"
    run_pipelines(
        tmp_path, store.env(), shuffle, [("local", "data", "out"), ("remote", f"{url}/corpus", f"{url}/out")]
    )
    assert_same_dataset(store.objects(f"{prefix}/out"), files_under(tmp_path / "out"), f"{url}/corpus")


@SHUFFLES
def test_gs_source_equals_a_local_run(tmp_path, gcs, shuffle):
    """Reads (listing, footers and column chunks by range) from gs://."""
    write_corpus(tmp_path)
    prefix = f"runs/{shuffle != 'null'}"
    gcs.upload_dir(tmp_path / "data", f"{prefix}/corpus")
    source = f"gs://{BUCKET}/{prefix}/corpus"
    run_pipelines(tmp_path, gcs.env(), shuffle, [("local", "data", "local"), ("remote", source, "remote")])
    assert_same_dataset(files_under(tmp_path / "remote"), files_under(tmp_path / "local"), source)
