"""seqwin.Loader and seqwin.WindowDataset reading a dataset from the S3
emulator (moto on 127.0.0.1), compared with the same dataset read locally."""
import numpy as np
import pytest

import seqwin
from loader_util import check_batch, oracle, write_dataset
from test_object_store import BUCKET, S3


@pytest.fixture(scope="module")
def s3_dataset(tmp_path_factory):
    out = write_dataset(tmp_path_factory.mktemp("loader-s3"))
    s3 = S3()
    try:
        s3.upload_dir(out, "windows/ds")
        options = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                   "aws_region": "us-east-1", "aws_endpoint": s3.endpoint}
        yield out, f"s3://{BUCKET}/windows/ds", options
    finally:
        s3.stop()


def test_loader_reads_s3_like_local(s3_dataset):
    out, url, options = s3_dataset
    truth = oracle(out, "train")
    kw = dict(split="train", batch_size=8, seed=3, rank=1, world_size=2, with_index=True, columns=["doc_id"])
    remote = seqwin.Loader(url, storage_options=options, **kw)
    local = seqwin.Loader(out, **kw)
    assert remote.windows == local.windows == len(truth["input"])
    got = [check_batch(b, truth, 8) for b in remote]
    assert got == [b["index"].tolist() for b in local] and len(got) > 10
    # resume from a state saved on the local copy
    state = local.state_dict(batches=4)
    again = seqwin.Loader(url, storage_options=options, **kw)
    again.load_state_dict(state)
    assert [check_batch(b, truth, 8) for b in again] == got[4:]


def test_window_dataset_reads_s3(s3_dataset):
    out, url, options = s3_dataset
    truth = oracle(out, "val")
    ds = seqwin.WindowDataset(url, split="val", storage_options=options)
    assert len(ds) == len(truth["input"])
    for i in [0, len(ds) - 1, len(ds) // 2]:
        assert np.array_equal(ds[i]["target"], truth["target"][i])


def test_missing_credentials_say_so(s3_dataset, monkeypatch):
    _, url, _ = s3_dataset
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(OSError, match="no AWS credentials"):
        seqwin.Loader(url, split="train", batch_size=8)


def test_incomplete_remote_dataset_is_refused(s3_dataset):
    _, url, options = s3_dataset
    with pytest.raises(FileNotFoundError, match="not a complete seqwin dataset"):
        seqwin.Loader(url.rsplit("/", 1)[0] + "/nothing-here", split="train", batch_size=8, storage_options=options)
