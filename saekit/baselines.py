"""The expensive routes to a head ranking, which the SAE method is compared against.

Each baseline returns :class:`BaselineScores`: one score per head ``[n_layers, n_heads]``, higher
= more in the circuit, the same format as the SAE method's scores, so ROC AUC, circuit tables
and faithfulness curves apply unchanged. Each also records its wall time. Scores are absolute
values of a signed effect: a head that *lowers* the metric (IOI's negative name movers) is as
much part of the circuit as one that raises it. The signed values are kept beside them.

- :func:`activation_patching_scores`: per-head activation patching, one forward pass per head
  (|:func:`saekit.ablation.head_patching_effects`|). The ground-truth route; slow for big models.
- :func:`attribution_patching_scores`: its first-order Taylor approximation at hook_z, two
  forward passes and one backward pass: ``(z_neg − z_pos) · ∂metric/∂z``, summed over positions
  and d_head, averaged over prompts.
- :func:`hisp_scores`: head-importance score for pruning (Michel et al. 2019). Each head's z is
  multiplied by a mask ξ_h = 1; the score is the mean over prompts of ``|∂metric/∂ξ_h|``
  = ``|Σ z · ∂metric/∂z|`` (one forward and one backward pass).
- :func:`acdc_scores`: ACDC over heads (:func:`saekit.ablation.prune_heads`, mean ablation):
  the faithfulness each head's ablation cost the running circuit when it was tested; the heads
  ACDC keeps are those scoring at least its threshold. One forward pass per head, in sequence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from saekit.ablation import capture_head_z, head_patching_effects, hook_z_name, model_shape, prune_heads
from saekit._checks import checks_model_and_task
from saekit.errors import TaskError
from saekit.tasks.base import ContrastiveTask

if TYPE_CHECKING:
    from saekit._tl import HookedModel


@dataclass
class BaselineScores:
    """Per-head scores of one baseline (higher = more in the circuit) and what they cost."""

    method: str
    scores: Float[Tensor, "n_layers n_heads"]
    """|signed|: the ranking used for ROC AUC and circuit selection."""
    signed: Float[Tensor, "n_layers n_heads"]
    """Estimated change of the mean metric (patching methods) or mean gradient (HISP, signed)."""
    seconds: float


def _timed(method: str, compute: Callable[[], tuple[Tensor, Tensor]]) -> BaselineScores:
    started = time.perf_counter()
    scores, signed = compute()
    return BaselineScores(method, scores.cpu(), signed.cpu(), time.perf_counter() - started)


@checks_model_and_task
def activation_patching_scores(model: HookedModel, task: ContrastiveTask, batch_size: int = 64) -> BaselineScores:
    """|mean metric change| when one head's z is patched from the paired negative, per head."""

    def compute() -> tuple[Tensor, Tensor]:
        effects = head_patching_effects(model, task, batch_size)
        return effects.abs(), effects

    return _timed("activation_patching", compute)


def _metric_gradients(
    model: HookedModel, part: ContrastiveTask
) -> tuple[list[Float[Tensor, "batch seq n_heads d_head"]], list[Float[Tensor, "batch seq n_heads d_head"]]]:
    """Each layer's hook_z on the positives and ∂(Σ_prompts metric)/∂z, in one forward + backward.

    A zero tensor that requires grad is added to every z, so its gradient is the total
    derivative through all later layers, and model parameters get no ``.grad``.
    """
    n_layers, _ = model_shape(model)
    z_values: list[Tensor] = [torch.empty(0)] * n_layers
    offsets: list[Tensor] = [torch.empty(0)] * n_layers

    def hook_for(layer: int) -> Callable:
        def hook(z: Tensor, hook: Any) -> Tensor:
            z_values[layer] = z.detach()
            offsets[layer] = torch.zeros_like(z, requires_grad=True)
            return z + offsets[layer]

        return hook

    with torch.enable_grad(), model.hooks(fwd_hooks=[(hook_z_name(l), hook_for(l)) for l in range(n_layers)]):
        total = part.metric_from_logits(model(part.positive_tokens.to(model.cfg.device))).sum()
        if not total.isfinite():
            raise TaskError(f"The task metric is not finite on task {part.name!r}; check its answer tokens.")
        gradients = torch.autograd.grad(total, offsets)
    return z_values, list(gradients)


def _per_head(
    model: HookedModel,
    task: ContrastiveTask,
    batch_size: int,
    per_prompt: Callable[[Tensor, Tensor, Tensor | None], Float[Tensor, "batch n_heads"]],
    needs_negative: bool,
    absolute_per_prompt: bool,
) -> tuple[Tensor, Tensor]:
    """Average ``per_prompt(z, ∂metric/∂z, z_negative)`` over prompts per layer; (scores, signed).

    ``absolute_per_prompt`` takes |·| before averaging (HISP), otherwise after.
    """
    if batch_size < 1:
        raise TaskError(f"batch_size must be at least 1, not {batch_size}.")
    n_layers, n_heads = model_shape(model)
    signed = torch.zeros(n_layers, n_heads)
    absolute = torch.zeros(n_layers, n_heads)
    for start in range(0, task.n_pairs, batch_size):
        part = task.subset(slice(start, start + batch_size))
        negative_z = capture_head_z(model, part.negative_tokens) if needs_negative else None
        z_values, gradients = _metric_gradients(model, part)
        for layer in range(n_layers):
            negative = None if negative_z is None else negative_z[layer]
            values = per_prompt(z_values[layer], gradients[layer], negative).cpu()
            signed[layer] += values.sum(0)
            absolute[layer] += values.abs().sum(0)
    signed, absolute = signed / task.n_pairs, absolute / task.n_pairs
    return (absolute if absolute_per_prompt else signed.abs()), signed


@checks_model_and_task
def attribution_patching_scores(model: HookedModel, task: ContrastiveTask, batch_size: int = 64) -> BaselineScores:
    """|estimated mean metric change| of patching each head from the negative (first order)."""

    def estimate(z: Tensor, grad: Tensor, negative_z: Tensor | None) -> Tensor:
        return ((negative_z - z) * grad).sum((1, 3))

    return _timed(
        "attribution_patching",
        lambda: _per_head(model, task, batch_size, estimate, needs_negative=True, absolute_per_prompt=False),
    )


@checks_model_and_task
def hisp_scores(model: HookedModel, task: ContrastiveTask, batch_size: int = 64) -> BaselineScores:
    """Mean over prompts of |∂metric/∂ξ_h| for a mask ξ_h = 1 multiplying each head's z."""

    def mask_gradient(z: Tensor, grad: Tensor, negative_z: Tensor | None) -> Tensor:
        return (z * grad).sum((1, 3))

    return _timed(
        "hisp",
        lambda: _per_head(model, task, batch_size, mask_gradient, needs_negative=False, absolute_per_prompt=True),
    )


@checks_model_and_task
def acdc_scores(model: HookedModel, task: ContrastiveTask, batch_size: int = 64, threshold: float = 0.02) -> BaselineScores:
    """|Faithfulness lost| when ACDC over heads tested each head (mean ablation, ``threshold``)."""

    def compute() -> tuple[Tensor, Tensor]:
        effects = prune_heads(model, task, threshold, batch_size=batch_size).effects
        return effects.abs(), effects

    return _timed("acdc", compute)


BASELINES: dict[str, Callable[..., BaselineScores]] = {
    "activation_patching": activation_patching_scores,
    "attribution_patching": attribution_patching_scores,
    "hisp": hisp_scores,
    "acdc": acdc_scores,
}
"""Every baseline by name, each ``(model, task, batch_size=64) -> BaselineScores``."""
