"""Premise diagnostic: can SAE codes find this task's circuit in this model at all?

The method (docs/method.md) ranks heads by how differently their codes behave on positives and
negatives, so it finds *heads that carry class information*. That finds the circuit only where
class information is concentrated in the circuit, and argmax codes see it only where it is a
change of direction. `diagnose` measures both per head, without any SAE, from the paper's
head vectors (`saekit.activations.head_activations`):

- **d′** = ‖μ₊ − μ₋‖ / s, with s = sqrt((tr Σ₊ + tr Σ₋) / 2) the pooled within-class spread
  (tr Σ is a class's total variance, the mean squared distance of its vectors from their mean).
  Scale-free: rescaling a head leaves it unchanged.
- **probe accuracy**: cross-validated accuracy of a logistic regression telling a head's positive
  vectors from its negative ones (standardised features; folds split by pair, seeded).
- **direction vs size**: the cosine between μ₊ and μ₋ and the ratio ‖μ₊‖ / ‖μ₋‖. A head whose
  cosine is at least `SIZE_ONLY_COSINE` while its norms differ by a factor of at least
  `SIZE_ONLY_NORM_RATIO` changes only in size: argmax codes cannot see it.

The counterfactual edits of the same measurements (`remove_class_information`,
`keep_only_size_change`) act on a `HeadActivations` so that a notebook can run the
method on edited live activations and check the verdict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from saekit.activations import HeadActivations, head_activations
from saekit.errors import ActivationError, HeadSetError
from saekit.scoring import roc_auc
from saekit.tasks.base import ContrastiveTask
from saekit.tasks.ground_truth import heads_to_mask

INFORMATIVE_PROBE_ACCURACY = 0.75
"""A head *carries class information* when its probe accuracy is at least this: halfway between
chance (0.5) and a perfect probe (1.0)."""

PREMISE_HOLDS_AUC = 0.8
"""With a ground truth: the premise holds when d′ alone ranks the circuit heads first with at
least this ROC AUC (class information is concentrated in the circuit)."""

CANNOT_SEPARATE_AUC = 0.65
"""With a ground truth: at or below this ROC AUC of d′, non-circuit heads carry as much class
information as circuit heads, and codes cannot separate them. Between the two: partly."""

SPREAD_FRACTION = 0.5
"""Without a ground truth: class information counts as spread when more than this fraction of
all heads carries it (a circuit is rarely most of a model)."""

TOP_FRACTION = 0.25
"""Concentration is the share of the total d′ held by the top ``ceil(TOP_FRACTION * n_heads)``
heads; spread evenly it is about TOP_FRACTION, in a few heads close to 1."""

SIZE_ONLY_COSINE = 0.99
"""A head's change is *size-only* when cos(μ₊, μ₋) is at least this ..."""

SIZE_ONLY_NORM_RATIO = 1.1
"""... and its mean norms differ by at least this factor (either way)."""

VERDICTS = {
    "holds": "class information is concentrated in the circuit: the premise holds",
    "partly": "class information is partly concentrated in the circuit: codes may rank circuit heads "
              "higher, but non-circuit heads carry some too",
    "cannot_separate": "non-circuit heads carry as much class information as circuit heads: codes cannot "
                       "separate them here",
    "spread": "class information is spread over most heads: codes will rank many heads highly; check "
              "them against a known circuit",
    "concentrated": "class information is concentrated in a minority of heads: codes can single them out",
}
"""The verdict sentences, by key: the first three need a ground truth, the last two are used
without one."""


@dataclass(frozen=True)
class PremiseDiagnosis:
    """Per-head class information and direction-vs-size measures, their summary and the verdict."""

    d_prime: Float[Tensor, "n_layers n_heads"]
    probe_accuracy: Float[Tensor, "n_layers n_heads"]
    cosine: Float[Tensor, "n_layers n_heads"]
    """cos(μ₊, μ₋): 1 when the mean write keeps its direction between the classes."""
    norm_ratio: Float[Tensor, "n_layers n_heads"]
    """‖μ₊‖ / ‖μ₋‖."""
    size_only: Bool[Tensor, "n_layers n_heads"]
    ground_truth: frozenset[tuple[int, int]] | None
    n_informative: int
    """Heads whose probe accuracy is at least `INFORMATIVE_PROBE_ACCURACY`."""
    top_share: float
    """Share of the total d′ in the top ``ceil(TOP_FRACTION * n_heads)`` heads."""
    effective_heads: float
    """exp(entropy) of d′ normalised to sum 1: how many heads the information is spread over."""
    auc_d_prime: float | None
    auc_probe: float | None
    verdict_key: str
    seconds: float

    @property
    def n_heads_total(self) -> int:
        return self.d_prime.numel()

    @property
    def verdict(self) -> str:
        """The verdict sentence, with the size-only circuit heads argmax codes cannot see."""
        sentence = VERDICTS[self.verdict_key]
        if self.blind_heads:
            names = ", ".join(f"{layer}.{head}" for layer, head in self.blind_heads)
            sentence += f"; argmax codes cannot see heads {names} (their change is only of size)"
        return sentence

    @property
    def blind_heads(self) -> list[tuple[int, int]]:
        """Size-only heads: in the circuit when a ground truth is given, else all of them."""
        heads = [tuple(int(i) for i in head) for head in torch.nonzero(self.size_only).tolist()]
        if self.ground_truth is None:
            return heads
        return [head for head in heads if head in self.ground_truth]

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (grids as nested lists)."""
        return {
            "d_prime": self.d_prime.tolist(),
            "probe_accuracy": self.probe_accuracy.tolist(),
            "cosine": self.cosine.tolist(),
            "norm_ratio": self.norm_ratio.tolist(),
            "size_only": [list(head) for head in torch.nonzero(self.size_only).tolist()],
            "ground_truth": sorted([list(head) for head in self.ground_truth or []]),
            "n_heads": self.n_heads_total,
            "n_informative": self.n_informative,
            "top_share": self.top_share,
            "effective_heads": self.effective_heads,
            "auc_d_prime": self.auc_d_prime,
            "auc_probe": self.auc_probe,
            "verdict_key": self.verdict_key,
            "verdict": self.verdict,
            "blind_heads": [list(head) for head in self.blind_heads],
            "thresholds": {
                "informative_probe_accuracy": INFORMATIVE_PROBE_ACCURACY,
                "premise_holds_auc": PREMISE_HOLDS_AUC,
                "cannot_separate_auc": CANNOT_SEPARATE_AUC,
                "spread_fraction": SPREAD_FRACTION,
                "top_fraction": TOP_FRACTION,
                "size_only_cosine": SIZE_ONLY_COSINE,
                "size_only_norm_ratio": SIZE_ONLY_NORM_RATIO,
            },
            "seconds": self.seconds,
        }


def d_prime(activations: HeadActivations) -> Float[Tensor, " n_heads_total"]:
    """‖μ₊ − μ₋‖ / sqrt((tr Σ₊ + tr Σ₋) / 2) per head; 0 for a head constant on both sides and
    inf for one constant within each class but different between them."""
    positive, negative = activations.positive.float(), activations.negative.float()
    gap = (positive.mean(0) - negative.mean(0)).norm(dim=-1)
    total_variance = positive.var(0, correction=0).sum(-1) + negative.var(0, correction=0).sum(-1)
    spread = (total_variance / 2).sqrt()
    return torch.where(spread > 0, gap / spread.clamp_min(torch.finfo(spread.dtype).tiny),
                       torch.where(gap > 0, math.inf, 0.0))


def direction_and_size(
    activations: HeadActivations,
) -> tuple[Float[Tensor, " n_heads_total"], Float[Tensor, " n_heads_total"]]:
    """(cos(μ₊, μ₋), ‖μ₊‖ / ‖μ₋‖) per head."""
    mean_positive, mean_negative = activations.positive.float().mean(0), activations.negative.float().mean(0)
    cosine = torch.nn.functional.cosine_similarity(mean_positive, mean_negative, dim=-1)
    return cosine, mean_positive.norm(dim=-1) / mean_negative.norm(dim=-1)


def probe_accuracy(activations: HeadActivations, n_folds: int = 5, seed: int = 0) -> Float[Tensor, " n_heads_total"]:
    """Cross-validated accuracy of a logistic probe, positive vs negative, per head: the share of
    all examples that the probe which did not train on them classifies right.

    Features are standardised inside each fold; a pair's positive and negative always fall in
    the same fold (assigned by a generator seeded with ``seed``), so the probe never sees the
    partner of a held-out example.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import PredefinedSplit, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_pairs = len(activations.positive)
    if n_folds < 2 or n_pairs < n_folds:
        raise ActivationError(
            f"The probe needs 2 <= n_folds <= pairs; got n_folds={n_folds} with {n_pairs} pairs. "
            f"Generate more pairs or lower n_folds."
        )
    fold_of_pair = torch.randperm(n_pairs, generator=torch.Generator().manual_seed(seed)) % n_folds
    folds = PredefinedSplit(np.concatenate([fold_of_pair.numpy()] * 2))
    labels = np.concatenate([np.ones(n_pairs), np.zeros(n_pairs)])
    vectors = torch.cat([activations.positive, activations.negative]).float().cpu().numpy()
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return torch.tensor([
        (cross_val_predict(probe, vectors[:, head], labels, cv=folds) == labels).mean()
        for head in range(vectors.shape[1])
    ], dtype=torch.float)


def _derangement(n: int, generator: torch.Generator) -> Tensor:
    """A random permutation of range(n) that moves every index (n >= 2)."""
    order = torch.randperm(n, generator=generator)
    target = torch.empty(n, dtype=torch.long)
    target[order] = order.roll(-1)
    return target


def _edited(activations: HeadActivations, heads: Iterable[tuple[int, int]], scale: Tensor | float, seed: int) -> HeadActivations:
    """Negatives of ``heads`` replaced by other pairs' positives times ``scale`` (per head or one)."""
    mask = heads_to_mask(heads, activations.n_layers, activations.n_heads).flatten().to(activations.positive.device)
    n_pairs = len(activations.positive)
    if n_pairs < 2:
        raise ActivationError("Editing class information needs at least two pairs.")
    others = activations.positive[_derangement(n_pairs, torch.Generator().manual_seed(seed)).to(mask.device)]
    scale = torch.as_tensor(scale, dtype=others.dtype, device=others.device).reshape(-1, 1)
    negative = torch.where(mask[:, None], others * scale, activations.negative)
    return replace(activations, negative=negative)


def remove_class_information(
    activations: HeadActivations, heads: Iterable[tuple[int, int]], seed: int = 0
) -> HeadActivations:
    """The counterfactual in which ``heads`` carry no class information.

    Each of their negative vectors becomes the positive vector of another pair (a seeded
    permutation that moves every pair), so their two sides are draws from one distribution.
    The other heads are untouched.
    """
    return _edited(activations, heads, 1.0, seed)


def keep_only_size_change(
    activations: HeadActivations, heads: Iterable[tuple[int, int]], scale: float | None = None, seed: int = 0
) -> HeadActivations:
    """The counterfactual in which ``heads`` differ between the classes only in size.

    Each of their negative vectors becomes another pair's positive vector times ``scale``, so
    the negatives point the way the positives do and are ``scale`` times as long. ``None`` uses
    each head's own ratio of mean norms ‖negative‖ / ‖positive‖, keeping its change of size.
    """
    if scale is None:
        ratio = activations.negative.float().norm(dim=-1).mean(0) / activations.positive.float().norm(dim=-1).mean(0)
        scale_values: Tensor | float = ratio.nan_to_num(1.0)
    elif not math.isfinite(scale) or scale <= 0:
        raise ActivationError(f"scale must be a positive number (or None for each head's own), got {scale!r}.")
    else:
        scale_values = float(scale)
    return _edited(activations, heads, scale_values, seed)


def _verdict_key(auc: float | None, n_informative: int, n_heads: int) -> str:
    if auc is None:
        return "spread" if n_informative > SPREAD_FRACTION * n_heads else "concentrated"
    if auc >= PREMISE_HOLDS_AUC:
        return "holds"
    if auc <= CANNOT_SEPARATE_AUC:
        return "cannot_separate"
    return "partly"


def diagnose(
    model,
    task: ContrastiveTask,
    ground_truth: Iterable[tuple[int, int]] | None = None,
    activation: str = "result",
    reduction: str = "mean",
    n_folds: int = 5,
    seed: int = 0,
    activations: HeadActivations | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> PremiseDiagnosis:
    """Measure how much class information each head carries and whether codes can see it.

    Takes the head vectors as `saekit.discovery.discover` does (the paper's ``result`` /
    ``mean`` by default) unless ``activations`` are given (edited ones, for instance). With
    ``ground_truth`` (a set of (layer, head)) the verdict says whether class information is
    concentrated in the circuit, by the ROC AUC of d′ against it; without, how many heads carry
    it. Thresholds are this module's constants.
    """
    started = time.perf_counter()
    if activations is None:
        activations = head_activations(model, task, activation, reduction, batch_size, progress)
    elif len(activations.positive) != task.n_pairs:
        raise ActivationError(
            f"The activations given cover {len(activations.positive)} pairs but the task has "
            f"{task.n_pairs}; compute them from this task."
        )
    shape = (activations.n_layers, activations.n_heads)
    truth = None
    if ground_truth is not None:
        truth = frozenset(tuple(head) for head in ground_truth)
        mask = heads_to_mask(truth, *shape)
        if bool(mask.all()):
            raise HeadSetError("The ground truth holds every head, so nothing can be told apart; pass a circuit.")

    separation = d_prime(activations).cpu()
    accuracy = probe_accuracy(activations, n_folds, seed)
    cosine, norm_ratio = (values.cpu() for values in direction_and_size(activations))
    informative = accuracy >= INFORMATIVE_PROBE_ACCURACY
    size_only = (cosine >= SIZE_ONLY_COSINE) & (
        norm_ratio.log().abs() >= math.log(SIZE_ONLY_NORM_RATIO)
    )
    # a head separable with no spread (d′ = inf) counts as twice the largest finite d′
    largest = separation[separation.isfinite()].max() if separation.isfinite().any() else torch.tensor(0.5)
    finite = separation.nan_to_num(posinf=2 * float(largest))
    n_top = math.ceil(TOP_FRACTION * finite.numel())
    total = float(finite.sum())
    share = finite / total if total > 0 else torch.full_like(finite, 1 / finite.numel())
    entropy = float(-(share * share.clamp_min(1e-30).log()).sum())
    auc_d = auc_probe = None
    if truth is not None:
        auc_d = roc_auc(finite.reshape(shape), truth)
        auc_probe = roc_auc(accuracy.reshape(shape), truth)
    n_informative = int(informative.sum())
    return PremiseDiagnosis(
        d_prime=separation.reshape(shape),
        probe_accuracy=accuracy.reshape(shape),
        cosine=cosine.reshape(shape),
        norm_ratio=norm_ratio.reshape(shape),
        size_only=size_only.reshape(shape),
        ground_truth=truth,
        n_informative=n_informative,
        top_share=float(share.topk(n_top).values.sum()),
        effective_heads=math.exp(entropy),
        auc_d_prime=auc_d,
        auc_probe=auc_probe,
        verdict_key=_verdict_key(auc_d, n_informative, finite.numel()),
        seconds=time.perf_counter() - started,
    )
