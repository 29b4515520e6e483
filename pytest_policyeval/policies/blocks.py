"""Row-wise network computations in blocks of a fixed number of rows, so a row's result never
depends on the batch it shares.

A float32 matrix product (CPU BLAS or cuBLAS) sums a row's terms in an order chosen by how many
rows it is given: the same observation gives logits or Gaussian means that differ in their last
bits when 1, 8 or 30 episodes are live. A continuous action shows that at once, and a sampled
discrete one now and then (a near-tie of two Gumbel-perturbed logits), so an episode replayed
alone for its replay, or resumed in a smaller round, could play differently from the one kept.
Given a fixed number of rows, the product gives each row the same bits whatever the other rows
hold and wherever it sits among them (checked in tests/test_policy_blocks.py), so every call here
is made with exactly `ROWS` rows, the last block padded with copies of the batch's first row (always a
valid input; the padding's results are dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

ROWS = 32  # rows per network call, always


def in_fixed_blocks(fn: Callable[..., Any], *inputs: torch.Tensor, rows: int = ROWS) -> Any:
    """`fn(*inputs)` for inputs whose first dimension is the row, computed `rows` rows at a time.

    `fn` must treat rows independently (a batch of policies' steps). Its result may be a tensor or
    nested tuples/lists of tensors with rows first; each is joined and cut back to the real rows.
    """
    count = inputs[0].shape[0]
    if count == 0 or count == rows:
        return fn(*inputs)
    pad = -count % rows
    if pad:
        inputs = tuple(torch.cat((x, x[:1].expand(pad, *x.shape[1:]))) for x in inputs)
    if count < rows:  # one block: no joining, only the padding's rows cut off
        return _join([fn(*inputs)], count)
    outputs = [fn(*block) for block in zip(*(x.split(rows) for x in inputs), strict=True)]
    return _join(outputs, count)


def _join(parts: list[Any], count: int) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return (first if len(parts) == 1 else torch.cat(parts))[:count]
    if isinstance(first, tuple | list):
        joined = [_join([p[i] for p in parts], count) for i in range(len(first))]
        return type(first)(joined)
    raise TypeError(f"a row-wise network returned {type(first).__name__}, not tensors")
