"""HF causal LMs on seqwin batches: a tiny randomly initialised GPT-2 on CPU;
its loss must be the cross-entropy over exactly seqwin's (input, target) pairs."""
import numpy as np
import pytest

import seqwin
import seqwin.hf
from loader_util import write_dataset

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("hf"))


def tiny_gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=1000, n_positions=32)
    return transformers.GPT2LMHeadModel(config).eval()


def test_loss_is_cross_entropy_over_every_pair(out):
    model = tiny_gpt2()
    batch = next(iter(seqwin.Loader(out, split="train", batch_size=4, seed=0)))
    kwargs = seqwin.hf.causal_lm_batch(batch)
    with torch.no_grad():
        result = model(**kwargs)
        logits = model(input_ids=kwargs["input_ids"]).logits
    inp, tgt = torch.as_tensor(batch["input"]).long(), torch.as_tensor(batch["target"]).long()
    assert torch.equal(inp[:, 1:], tgt[:, :-1])  # seqwin's pairs: target is input shifted by one
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 1000), tgt.reshape(-1))
    assert torch.allclose(result.loss, expected, rtol=1e-6, atol=1e-6)
    # The two usual mistakes give other losses: two tokens ahead, and one pair short.
    with torch.no_grad():
        ahead = model(input_ids=inp, labels=tgt).loss
        short = model(input_ids=inp, labels=inp).loss
    short_expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 1000), tgt[:, :-1].reshape(-1))
    assert torch.allclose(short, short_expected, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(ahead, expected) and not torch.allclose(short, expected)


def test_loss_mask_ignores_masked_targets():
    batch = {
        "input": np.array([[1, 2, 3, 4]], dtype=np.int32),
        "target": np.array([[2, 3, 4, 5]], dtype=np.int32),
        "loss_mask": np.array([[1, 1, 0, 1]], dtype=np.uint8),
    }
    kwargs = seqwin.hf.causal_lm_batch(batch)
    assert kwargs["shift_labels"].tolist() == [[2, 3, -100, 5]]
    assert kwargs["input_ids"].dtype == torch.int64


def test_trainer_with_window_dataset_and_collate(out, tmp_path):
    ds = seqwin.WindowDataset(out, split="train")
    model = tiny_gpt2().train()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=8, max_steps=3, report_to=[],
        use_cpu=True, logging_steps=1, save_strategy="no", dataloader_num_workers=0,
        remove_unused_columns=False,  # the collator reads input/target, not forward() arguments
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=ds, data_collator=seqwin.hf.collate)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["shift_labels"].shape == (8, 16) and torch.equal(batch["shift_labels"], batch["labels"])
    result = trainer.train()
    assert result.global_step == 3 and np.isfinite(result.training_loss)
