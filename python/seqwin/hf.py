"""Hugging Face causal LMs on seqwin windows, every (input, target) pair trained.

HF causal LMs shift ``labels`` inside the model (``labels[..., 1:]`` are the
targets of ``logits[..., :-1]``), so ``labels=target`` would train two tokens
ahead and ``labels=input`` drops the last pair of every window. seqwin's
``target`` is already shifted: pass it as ``shift_labels``, which
transformers' ``ForCausalLMLoss`` (and ``Trainer``'s token count) takes
as is::

    model(input_ids=input, labels=target, shift_labels=target)

:func:`causal_lm_batch` builds those arguments from a seqwin batch and
:func:`collate` is a ``data_collator`` for ``Trainer`` over
:class:`seqwin.WindowDataset` items. Imports torch when called, never on
``import seqwin``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    import torch
    from typing_extensions import TypeAlias

    #: A batch column as :func:`causal_lm_batch` takes it.
    ArrayLike: TypeAlias = Union[np.ndarray, torch.Tensor]

IGNORE_INDEX = -100


def causal_lm_batch(
    batch: Mapping[str, ArrayLike], *, ignore_index: int = IGNORE_INDEX
) -> dict[str, torch.Tensor]:
    """Model keyword arguments from a seqwin batch (numpy arrays or tensors):
    ``input_ids`` = ``input``, ``shift_labels`` = ``target`` with
    ``ignore_index`` where ``loss_mask`` is 0 (when the batch has one),
    ``labels`` the same (HF computes a loss only when ``labels`` is given;
    with ``shift_labels`` it is not shifted), ``position_ids`` when present.
    All int64 tensors, sharing memory with int64 inputs."""
    import torch

    def tensor(x: ArrayLike) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).long()

    input_ids = tensor(batch["input"])
    target = tensor(batch["target"])
    if "loss_mask" in batch:
        target = torch.where(tensor(batch["loss_mask"]) != 0, target, torch.full_like(target, ignore_index))
    out = {"input_ids": input_ids, "labels": target, "shift_labels": target}
    if "position_ids" in batch:
        out["position_ids"] = tensor(batch["position_ids"])
    return out


def collate(
    samples: Sequence[Mapping[str, np.ndarray]], *, ignore_index: int = IGNORE_INDEX
) -> dict[str, torch.Tensor]:
    """``data_collator`` for ``Trainer``: a list of :class:`seqwin.WindowDataset`
    items (dicts of ``(seq_len,)`` arrays) to :func:`causal_lm_batch` of their stack."""
    keys = [k for k in ("input", "target", "loss_mask", "position_ids") if k in samples[0]]
    return causal_lm_batch({k: np.stack([s[k] for s in samples]) for k in keys}, ignore_index=ignore_index)
