"""Issue 15, item 9: page checksums of the input are verified. A file written
with page CRCs (pyarrow ``write_page_checksum=True``) whose token data has one
flipped bit is refused (exit 2, naming the file), as pyarrow refuses it; the
intact file is accepted."""
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import seqwin_bin

MARKER = 0x5EC0_1234  # a token value whose bytes are easy to find in the file


def write_corpus(path):
    docs = [[MARKER] + list(range(i, i + 20)) for i in range(10)]
    table = pa.table({"tokens": pa.array(docs, pa.list_(pa.int32()))})
    pq.write_table(table, path, compression="none", use_dictionary=False, write_page_checksum=True)


def run(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "source: {path: c.parquet, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out}\n"
    )
    return subprocess.run([seqwin_bin(), "run", "p.yaml", "--quiet"], cwd=tmp_path, capture_output=True, text=True)


def test_intact_file_with_checksums_is_read(tmp_path):
    write_corpus(tmp_path / "c.parquet")
    out = run(tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_item_09_flipped_bit_in_a_checksummed_page_is_refused(tmp_path):
    path = tmp_path / "c.parquet"
    write_corpus(path)
    data = bytearray(path.read_bytes())
    needle = MARKER.to_bytes(4, "little")
    found = [i for i in range(len(data) - 3) if data[i : i + 4] == needle]
    # Two in the page header's statistics, ten in the values, two in the footer.
    assert len(found) == 14, found
    data[found[4]] ^= 0x01  # a token 0x5EC01234 becomes 0x5EC01235: still a valid id
    path.write_bytes(bytes(data))
    with pytest.raises(OSError, match="CRC"):
        pq.read_table(path, page_checksum_verification=True)
    out = run(tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("seqwin: error: c.parquet: row group 0 (rows 0..10) cannot be read: "), out.stderr
    assert "Page CRC checksum mismatch" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "out").exists()
