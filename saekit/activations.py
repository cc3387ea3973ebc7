"""Per-head activations: what every attention head writes, one vector per (prompt, head).

The paper's choice (docs/method.md §2) is each head's write into the residual stream,
``result = z · W_O[h]`` (no ``b_O``), averaged over all token positions including BOS. Because
the projection is linear, averaging ``z`` first and projecting afterwards gives the same vector
for a fraction of the cost, so the reduction happens inside a hook on ``blocks.L.attn.hook_z``
and no full activation cache is ever kept. Padding never enters a reduction: each prompt's
positions stop at ``task.lengths``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from saekit._checks import checks_model_and_task
from saekit.errors import ActivationError
from saekit.tasks.base import ContrastiveTask

ACTIVATIONS = ("result", "z")
"""``result``: the head's write into the residual stream (d_model); ``z``: its value mix (d_head)."""

REDUCTIONS = ("mean", "last", "mean_no_bos")
"""How positions are reduced: mean over all real positions (BOS included, the paper's), the
last real position (where the answer is predicted), or the mean without the BOS position."""


@dataclass(frozen=True)
class HeadActivations:
    """One vector per (example, head) for the positives and the paired negatives.

    Heads are flat, ``layer * n_heads + head``.
    """

    positive: Float[Tensor, "n_pairs n_heads_total d"]
    negative: Float[Tensor, "n_pairs n_heads_total d"]
    activation: str
    reduction: str
    n_layers: int
    n_heads: int

    @property
    def n_heads_total(self) -> int:
        return self.n_layers * self.n_heads

    @property
    def width(self) -> int:
        return self.positive.shape[-1]


class _StopForward(Exception):
    """Raised by the last layer's hook: nothing after it (unembedding) is needed."""


def _position_weights(task: ContrastiveTask, reduction: str) -> Float[Tensor, "n_pairs seq"]:
    """Weights over positions whose weighted sum is the reduction; zero on padding."""
    mask = task.position_mask().float()
    if reduction == "last":
        return torch.nn.functional.one_hot(task.lengths - 1, mask.shape[1]).float()
    if reduction == "mean_no_bos":
        if int(task.lengths.min()) < 2:
            raise ActivationError(
                "reduction='mean_no_bos' needs at least one token after BOS in every prompt; "
                "some prompts are BOS only. Use reduction='mean' or longer prompts."
            )
        mask[:, 0] = 0.0
    return mask / mask.sum(1, keepdim=True)


def _check_model(model, activation: str, reduction: str) -> None:
    if activation not in ACTIVATIONS:
        raise ActivationError(
            f"Unknown activation {activation!r}; use 'result' (a head's write into the residual "
            f"stream, z · W_O) or 'z' (blocks.L.attn.hook_z, d_head wide)."
        )
    if reduction not in REDUCTIONS:
        raise ActivationError(f"Unknown reduction {reduction!r}; use one of {', '.join(REDUCTIONS)}.")
    missing = [
        f"blocks.{layer}.attn.hook_z"
        for layer in range(model.cfg.n_layers)
        if f"blocks.{layer}.attn.hook_z" not in model.hook_dict
    ]
    if missing:
        raise ActivationError(
            f"The model has no hook {missing[0]}; saekit reads per-head activations there. Load "
            f"the model with saekit.load_model so TransformerLens provides its standard hooks."
        )


@checks_model_and_task
def head_activations(
    model,
    task: ContrastiveTask,
    activation: str = "result",
    reduction: str = "mean",
    batch_size: int = 64,
    progress: bool = True,
) -> HeadActivations:
    """Every head's activation on every positive and negative prompt of ``task``.

    One forward pass per ``batch_size`` pairs (positives and negatives together), stopped
    after the last attention layer. Returns ``(n_pairs, n_layers * n_heads, d)`` tensors
    (``d`` = d_model for "result", d_head for "z") in float32 on the model's device.
    """
    from tqdm.auto import tqdm

    _check_model(model, activation, reduction)
    if batch_size < 1:
        raise ActivationError(f"batch_size must be at least 1, not {batch_size}.")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    device = next(model.parameters()).device
    weights = _position_weights(task, reduction).to(device)
    w_out = model.W_O.detach().float() if activation == "result" else None  # [L, H, d_head, d_model]
    width = model.cfg.d_model if activation == "result" else model.cfg.d_head
    collected: dict[int, Tensor] = {}

    def reduce_z(z: Float[Tensor, "batch seq n_heads d_head"], hook) -> None:
        layer = int(hook.name.split(".")[1])
        reduced = torch.einsum("bs,bshd->bhd", batch_weights, z.float())
        if w_out is not None:
            reduced = torch.einsum("bhd,hdm->bhm", reduced, w_out[layer])
        collected[layer] = reduced
        if layer == n_layers - 1:
            raise _StopForward

    hooks = [(f"blocks.{layer}.attn.hook_z", reduce_z) for layer in range(n_layers)]
    outputs: dict[str, list[Tensor]] = {"positive": [], "negative": []}
    starts = range(0, task.n_pairs, batch_size)
    # Pass `disable` only to switch the bar off: an explicit value would override TQDM_DISABLE.
    switch_off = {} if progress else {"disable": True}
    with torch.no_grad(), tqdm(total=len(starts), desc="head activations", **switch_off) as bar:
        for start in starts:
            rows = slice(start, start + batch_size)
            seq = int(task.lengths[rows].max())
            # A pair's positive and negative share a batch: one forward pass for both.
            tokens = torch.cat([task.positive_tokens[rows, :seq], task.negative_tokens[rows, :seq]])
            batch_weights = weights[rows, :seq].repeat(2, 1)
            collected.clear()
            try:
                with model.hooks(fwd_hooks=hooks):
                    model(tokens.to(device))
            except _StopForward:
                pass
            per_head = torch.stack([collected[layer] for layer in range(n_layers)], dim=1)
            positive, negative = per_head.chunk(2)
            outputs["positive"].append(positive)
            outputs["negative"].append(negative)
            bar.update()
    sides = {}
    for side, chunks in outputs.items():
        stacked = torch.cat(chunks).reshape(task.n_pairs, n_layers * n_heads, width)
        if not torch.isfinite(stacked).all():
            raise ActivationError(
                f"Head activations on the {side} prompts contain NaN or inf. The model's weights "
                f"or its forward pass overflow: load it in float32, and check the weights with "
                f"torch.isfinite(p).all() for p in model.parameters()."
            )
        sides[side] = stacked
    return HeadActivations(sides["positive"], sides["negative"], activation, reduction, n_layers, n_heads)
