"""Other routes to a head ranking, which the SAE method is compared against.

Each baseline returns `BaselineScores`: one score per head ``[n_layers, n_heads]``, higher
= more in the circuit, the same format as the SAE method's scores, so ROC AUC, circuit tables
and faithfulness curves apply unchanged. Each also records its wall time.

Four are the expensive routes to a circuit. Their scores are absolute values of a signed
effect: a head that *lowers* the metric (IOI's negative name movers) is as much part of the
circuit as one that raises it. The signed values are kept beside them.

- `activation_patching_scores`: per-head activation patching, one forward pass per head
  (|`saekit.ablation.head_patching_effects`|). The ground-truth route; slow for big models.
- `attribution_patching_scores`: its first-order Taylor approximation at hook_z, two
  forward passes and one backward pass: ``(z_neg − z_pos) · ∂metric/∂z``, summed over positions
  and d_head, averaged over prompts.
- `hisp_scores`: head-importance score for pruning (Michel et al. 2019). Each head's z is
  multiplied by a mask ξ_h = 1; the score is the mean over prompts of ``|∂metric/∂ξ_h|``
  = ``|Σ z · ∂metric/∂z|`` (one forward and one backward pass).
- `acdc_scores`: ACDC over heads (`saekit.ablation.prune_heads`, mean ablation):
  the faithfulness each head's ablation cost the running circuit when it was tested; the heads
  ACDC keeps are those scoring at least its threshold. One forward pass per head, in sequence.

Four are trivial: no gradient, no ablation, at most one harvest of head vectors
(`saekit.activations.head_activations` with the paper's settings: each head's write
``z · W_O`` averaged over positions). A method that does not rank the circuit better than they
do has found nothing on that model beyond what a head's size, its class information or its
depth already say.

- `head_norm_scores`: the mean norm of a head's vector over positives and negatives.
- `mean_difference_scores`: ``‖μ₊ − μ₋‖``, the distance between a head's mean vector on
  positives and on negatives.
- `probe_scores`: cross-validated accuracy of a logistic-regression probe that tells a
  head's positive vectors from its negative ones.
- `layer_index_scores`: the head's layer, later = higher.

The three that read head vectors take ``activations=`` to reuse a harvest (whose time is then
not counted); without it each harvests its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from saekit.ablation import (
    PrunedCircuit,
    capture_head_z,
    final_residual,
    head_patching_effects,
    hook_z_name,
    model_shape,
    prune_heads,
    scored_tokens,
    unembed,
)
from saekit._checks import checks_model_and_task
from saekit.activations import HeadActivations, head_activations
from saekit.diagnose import probe_accuracy
from saekit.errors import ActivationError, TaskError
from saekit.tasks.base import ContrastiveTask, compute_metric

if TYPE_CHECKING:
    from saekit._tl import HookedModel


@dataclass
class BaselineScores:
    """Per-head scores of one baseline (higher = more in the circuit) and what they cost."""

    method: str
    scores: Float[Tensor, "n_layers n_heads"]
    """The ranking used for ROC AUC and circuit selection (|signed| for patching and ACDC)."""
    signed: Float[Tensor, "n_layers n_heads"]
    """The signed quantity behind ``scores``: the estimated change of the mean metric (patching
    methods, ACDC), the mean gradient (HISP), probe accuracy − 0.5 (above chance when positive);
    for a quantity that has no sign (a norm, a distance, a layer) the score itself."""
    seconds: float
    pruned: PrunedCircuit | None = None
    """ACDC's circuit, its faithfulness and KL (``acdc`` only): what `prune_heads` with
    the same arguments returns, kept so that nothing runs twice."""


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
    derivative through all later layers, and model parameters get no ``.grad``. Only the logits
    the metric reads are computed (the answer position; the answer and wrong tokens of a logit
    difference).
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

    hooks = [(hook_z_name(l), hook_for(l)) for l in range(n_layers)]
    columns, answers, wrongs = scored_tokens(part)
    with torch.enable_grad():
        resid = final_residual(model, part.positive_tokens, part.lengths - 1, hooks)
        logits = unembed(model, resid, columns)
        total = compute_metric(logits, answers.to(logits.device), wrongs.to(logits.device), part.metric).sum()
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
    """|Faithfulness lost| when ACDC over heads tested each head (mean ablation, ``threshold``);
    ``.pruned`` holds ACDC's circuit."""
    pruned: list[PrunedCircuit] = []

    def compute() -> tuple[Tensor, Tensor]:
        pruned.append(prune_heads(model, task, threshold, batch_size=batch_size))
        return pruned[0].effects.abs(), pruned[0].effects

    result = _timed("acdc", compute)
    result.pruned = pruned[0]
    return result


PROBE_FOLDS = 5
"""Cross-validation folds of `probe_scores` (fewer when the task has fewer pairs)."""


def _head_vectors(
    model: HookedModel, task: ContrastiveTask, batch_size: int, activations: HeadActivations | None
) -> HeadActivations:
    """``activations`` after checking they fit ``model`` and ``task``, else one harvest with the
    paper's settings (``result``, mean over positions)."""
    if activations is None:
        return head_activations(model, task, batch_size=batch_size, progress=False)
    if (activations.n_layers, activations.n_heads) != model_shape(model) or len(activations.positive) != task.n_pairs:
        raise ActivationError(
            f"The activations given cover {activations.n_layers} x {activations.n_heads} heads and "
            f"{len(activations.positive)} pairs, but the model has {model_shape(model)[0]} x "
            f"{model_shape(model)[1]} heads and the task {task.n_pairs} pairs; take them with "
            f"saekit.activations.head_activations(model, task)."
        )
    return activations


def _per_layer(values: Float[Tensor, " n_heads_total"], vectors: HeadActivations) -> Float[Tensor, "n_layers n_heads"]:
    return values.reshape(vectors.n_layers, vectors.n_heads)


def head_norm_scores(
    model: HookedModel, task: ContrastiveTask, batch_size: int = 64, activations: HeadActivations | None = None
) -> BaselineScores:
    """Mean ``‖v‖`` of each head's vector over every positive and negative example.

    The prior "big writers matter": a ranking any method gets for free if it favours heads that
    write a lot.
    """

    def compute() -> tuple[Tensor, Tensor]:
        vectors = _head_vectors(model, task, batch_size, activations)
        norms = torch.cat([vectors.positive, vectors.negative]).norm(dim=-1).mean(0)
        scores = _per_layer(norms, vectors)
        return scores, scores

    return _timed("head_norm", compute)


def mean_difference_scores(
    model: HookedModel, task: ContrastiveTask, batch_size: int = 64, activations: HeadActivations | None = None
) -> BaselineScores:
    """``‖μ₊ − μ₋‖`` per head: how far its mean vector moves between positives and negatives.

    A head whose write changes with the task's information moves its mean, in direction or in
    size; the code-overlap method only sees the changes that switch a head's argmax latent.
    """

    def compute() -> tuple[Tensor, Tensor]:
        vectors = _head_vectors(model, task, batch_size, activations)
        distance = (vectors.positive.mean(0) - vectors.negative.mean(0)).norm(dim=-1)
        scores = _per_layer(distance, vectors)
        return scores, scores

    return _timed("mean_difference", compute)


def probe_scores(
    model: HookedModel,
    task: ContrastiveTask,
    batch_size: int = 64,
    activations: HeadActivations | None = None,
    folds: int = PROBE_FOLDS,
    seed: int = 0,
) -> BaselineScores:
    """Cross-validated accuracy of a positive-vs-negative linear probe on each head's vectors.

    `saekit.diagnose.probe_accuracy`: one standardised logistic regression per head
    (scikit-learn), scored on held-out examples, with folds that split *pairs*, so no probe is
    tested on a prompt whose twin it trained on. 0.5 is chance. ``signed`` holds accuracy − 0.5.
    """
    if task.n_pairs < 2:
        raise TaskError(f"probe_scores cross-validates over pairs and needs at least 2, not {task.n_pairs}.")
    if folds < 2:
        raise TaskError(f"probe_scores needs at least 2 folds, not {folds}.")

    def compute() -> tuple[Tensor, Tensor]:
        vectors = _head_vectors(model, task, batch_size, activations)
        scores = _per_layer(probe_accuracy(vectors, min(folds, task.n_pairs), seed), vectors)
        return scores, scores - 0.5

    return _timed("probe", compute)


def layer_index_scores(model: HookedModel, task: ContrastiveTask, batch_size: int = 64) -> BaselineScores:
    """Each head's layer: later heads rank higher. Needs no forward pass.

    The trivial positional prior. A circuit ends where the answer is written, so its heads sit
    late more often than not, and a later head can read everything earlier heads wrote. A method
    whose AUC does not beat this one may only be rediscovering depth. Heads of one layer tie
    (ROC AUC counts a tie as half); an AUC below 0.5 says the circuit sits early.
    """

    def compute() -> tuple[Tensor, Tensor]:
        n_layers, n_heads = model_shape(model)
        scores = torch.arange(n_layers, dtype=torch.float32)[:, None].expand(n_layers, n_heads).clone()
        return scores, scores

    return _timed("layer_index", compute)


BASELINES: dict[str, Callable[..., BaselineScores]] = {
    "activation_patching": activation_patching_scores,
    "attribution_patching": attribution_patching_scores,
    "hisp": hisp_scores,
    "acdc": acdc_scores,
    "head_norm": head_norm_scores,
    "mean_difference": mean_difference_scores,
    "probe": probe_scores,
    "layer_index": layer_index_scores,
}
"""Every baseline by name, each ``(model, task, batch_size=64) -> BaselineScores``: the four
expensive ones, then the four trivial ones (`TRIVIAL_BASELINES`)."""

TRIVIAL_BASELINES = ("head_norm", "mean_difference", "probe", "layer_index")
"""The baselines that need no gradient and no ablation: what a method must beat to have found anything."""
