"""Reference solutions of the course exercises, one per check of the same name.

The checks compare a learner's function with these, and a learner who is stuck can take one
and go on: ``top_k_heads = use_solution("top_k_heads")`` replaces the stub of that name
(13 of the 14 exercises feed later cells, so skipping one must leave a working function).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saekit.codes import NO_CODE
from saekit.errors import CourseError


def top_k_heads(scores: Float[Tensor, "n_layers n_heads"], k: int) -> set[tuple[int, int]]:
    """The k best-scoring heads as (layer, head) tuples; ties go to the lower flat index."""
    n_heads = scores.shape[1]
    best = torch.sort(scores.flatten(), descending=True, stable=True).indices[:k]
    return {divmod(int(index), n_heads) for index in best}


def head_writes(
    z: Float[Tensor, "batch pos n_heads d_head"], W_O: Float[Tensor, "n_heads d_head d_model"]  # noqa: N803
) -> Float[Tensor, "batch pos n_heads d_model"]:
    """Each head's output projected into the residual stream, heads kept apart."""
    return torch.einsum("bphd,hdm->bphm", z, W_O)


def masked_position_mean(
    values: Float[Tensor, "n seq n_heads d"], lengths: Int[Tensor, " n"]
) -> Float[Tensor, "n n_heads d"]:
    """Mean over each prompt's real positions (0 .. length-1); padding is ignored."""
    real = torch.arange(values.shape[1]) < lengths[:, None]
    return (values * real[:, :, None, None]).sum(dim=1) / lengths[:, None, None]


def zero_head_hook(head: int) -> Callable:
    """A hook for ``blocks.L.attn.hook_z`` that sets head ``head``'s z to zero."""

    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    return hook


def sae_loss(
    x: Float[Tensor, "n d"], x_hat: Float[Tensor, "n d"], latents: Float[Tensor, "n d_sae"], l1_coefficient: float
) -> Tensor:
    """Reconstruction MSE plus the L1 sparsity penalty, averaged over samples."""
    return (x_hat - x).pow(2).mean() + l1_coefficient * latents.abs().sum(dim=-1).mean()


def explained_variance(x: Float[Tensor, "n d"], x_hat: Float[Tensor, "n d"]) -> float:
    """1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖², over all samples and dimensions."""
    return float(1 - (x - x_hat).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum())


def codes_from_latents(latents: Float[Tensor, "... d_sae"]) -> Int[Tensor, "..."]:
    """Index of the strongest latent; NO_CODE (-1) for an all-zero latent vector."""
    return latents.argmax(dim=-1).masked_fill((latents == 0).all(dim=-1), NO_CODE)


def node_scores(
    positive_codes: Int[Tensor, "n_pos n_heads"], negative_codes: Int[Tensor, "n_neg n_heads"]
) -> Int[Tensor, " n_heads"]:
    """|set of positive codes − set of negative codes| for every head."""
    return torch.tensor([
        len(set(positive_codes[:, head].tolist()) - set(negative_codes[:, head].tolist()))
        for head in range(positive_codes.shape[1])
    ])


def precision_recall_at_k(scores: Float[Tensor, " n"], is_true: Bool[Tensor, " n"], k: int) -> tuple[float, float]:
    """(precision, recall) of the k highest-scoring heads (ties by head index)."""
    picked = torch.sort(scores, descending=True, stable=True).indices[:k]
    hits = int(is_true[picked].sum())
    return hits / k, hits / int(is_true.sum())


def mean_ablate(
    z: Float[Tensor, "batch pos n_heads d_head"], mean_z: Float[Tensor, "n_heads d_head"], keep: Bool[Tensor, " n_heads"]
) -> Float[Tensor, "batch pos n_heads d_head"]:
    """Heads outside the circuit take their mean z; circuit heads keep their own."""
    return torch.where(keep[:, None], z, mean_z)


def normalised_faithfulness(metric_circuit: float, metric_empty: float, metric_model: float) -> float:
    """0 = no better than ablating everything, 1 = as good as the full model."""
    return (metric_circuit - metric_empty) / (metric_model - metric_empty)


def third_name_negative(positive: str, subject: str, replacement: str) -> str:
    """``positive`` with the first mention of ``subject`` (a whole word) replaced."""
    words = positive.split(" ")
    words[words.index(subject)] = replacement
    return " ".join(words)


def topk_activation(pre: Float[Tensor, "n d_sae"], k: int) -> Float[Tensor, "n d_sae"]:
    """ReLU of each row's k largest pre-activations; every other latent is 0."""
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, values.relu())


def signed_codes(latents: Float[Tensor, "... d_sae"]) -> Int[Tensor, "..."]:
    """Index of the largest |latent|, + d_sae when that latent is negative; NO_CODE for all-zero rows."""
    best = latents.abs().argmax(dim=-1)
    value = latents.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    codes = torch.where(value < 0, best + latents.shape[-1], best)
    return codes.masked_fill((latents == 0).all(dim=-1), NO_CODE)


def head_d_prime(positive: Float[Tensor, "n d"], negative: Float[Tensor, "n d"]) -> float:
    """‖μ₊ − μ₋‖ over the pooled within-class spread sqrt((tr Σ₊ + tr Σ₋) / 2)."""
    gap = (positive.mean(0) - negative.mean(0)).norm()
    spread = ((positive.var(0, correction=0).sum() + negative.var(0, correction=0).sum()) / 2).sqrt()
    return float(gap / spread)


def supervised_features(vectors: Float[Tensor, "n d"], labels: Int[Tensor, " n"]) -> Float[Tensor, "n_values d"]:
    """Per value of ``labels`` (in sorted order), the mean of its vectors minus the mean of all vectors."""
    values, inverse = labels.unique(return_inverse=True)
    sums = vectors.new_zeros(len(values), vectors.shape[1]).index_add_(0, inverse, vectors)
    counts = torch.bincount(inverse, minlength=len(values))
    return sums / counts[:, None] - vectors.mean(0)


#: Every exercise's reference solution, by the name of its check.
SOLUTIONS: dict[str, Callable] = {
    fn.__name__: fn
    for fn in (
        top_k_heads, head_writes, masked_position_mean, zero_head_hook, sae_loss, explained_variance,
        codes_from_latents, node_scores, precision_recall_at_k, mean_ablate, normalised_faithfulness,
        third_name_negative, topk_activation, signed_codes, head_d_prime, supervised_features,
    )
}


def use_solution(exercise: str) -> Callable:
    """Skip an exercise: print the reference solution of ``exercise`` and return it.

    Assign it to the stub's name, e.g. ``top_k_heads = use_solution("top_k_heads")``, and the
    check and every later cell run on the reference instead of the stub.
    """
    if exercise not in SOLUTIONS:
        raise CourseError(f"No exercise named {exercise!r}; the exercises are: {', '.join(SOLUTIONS)}.")
    solution = SOLUTIONS[exercise]
    print(f"Skipped exercise {exercise}: using the reference solution (saekit.course.solutions):\n")
    print(inspect.getsource(solution))
    return solution
