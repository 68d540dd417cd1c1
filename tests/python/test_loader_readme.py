"""The README's DDP training loop, run with torchrun on 2 processes (gloo),
then resumed from its checkpoint on 1 process past the end of the epoch."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from loader_util import write_dataset

torch = pytest.importorskip("torch")


def readme_block(marker):
    text = (ROOT / "README.md").read_text()
    m = re.search(re.escape(f"<!-- {marker} -->") + r"\s*```python\n(.*?)```", text, re.S)
    assert m, f"no {marker} block in README.md"
    return m.group(1)


def torchrun(tmp, procs, *args):
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
         "train_ddp.py", *args],
        cwd=tmp, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_readme_ddp_loop_trains_and_resumes(tmp_path):
    out = write_dataset(tmp_path)
    (tmp_path / "train_ddp.py").write_text(readme_block("train_ddp.py"))
    assert "step 12 loss" in torchrun(tmp_path, 2, str(out), "12")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 10 and ckpt["loader"]["epoch"] == 0
    # 1 process now (elastic), through the end of epoch 0 into epoch 1
    assert "step 90 loss" in torchrun(tmp_path, 1, str(out), "90")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 90 and ckpt["loader"]["epoch"] == 1
