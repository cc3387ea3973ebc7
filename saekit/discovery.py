"""The whole method in one call: contrastive task → head activations → SAE → codes → head scores.

``discover(model, task, DiscoveryConfig())`` runs O'Neill & Bui's circuit identification as the
paper does by default. Head activations are taken once; each seed then draws its own
``sae_examples`` training examples (positives and negatives mixed) and its own SAE
initialisation, trains the SAE, encodes the counted examples and scores every head. With a
ground-truth head set it also reports ROC AUC per seed.

Two knobs stay separate (docs/method.md §3): ``sae_examples`` trains the SAE (few is better) and
``count_examples`` is how many pairs' codes are counted (more is better).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from saekit._checks import check_model_and_task, check_seeds
from saekit._config import reject_unknown_fields
from saekit._io import json_ready, parse_json
from saekit.activations import ACTIVATIONS, REDUCTIONS, HeadActivations, head_activations
from saekit.codes import CODE_KINDS, head_codes, level_edges
from saekit.errors import ActivationError, SaekitError, TaskError
from saekit.sae import SAEConfig, reconstruction_metrics, train_sae
from saekit.scoring import edge_scores, node_scores, ranked_heads, roc_auc, sample_sd
from saekit.tasks.base import ContrastiveTask
from saekit.tasks.ground_truth import heads_to_mask

SCORES = ("node", "node_normalised", "edge")
"""``node``: |P_h \\ N_h| (the paper's main results); ``node_normalised``: divided by
|P_h ∪ N_h|; ``edge``: head appearances among the top quarter of ordered head pairs, ranked
by co-occurring code pairs (`saekit.scoring.edge_head_scores`)."""

PAPER_L1_COEFFICIENT = {"docstring": 0.05}
"""The paper's L1 coefficient where it differs from SAEConfig's default (0.02)."""


@dataclass(frozen=True)
class DiscoveryConfig:
    """Every choice `discover` makes; the defaults are the paper's, but for the L1
    coefficient of docstring (0.05), which `paper_config` sets per task.

    ``count_examples`` is a number of *pairs* (each gives one positive and one negative
    example); None counts all of them (2N examples). ``code_kind`` is how a head's latents
    become one code (`saekit.codes.CODE_KINDS`): "argmax", the paper's, or
    "argmax_level", which adds the winning latent's activation level in ``code_levels`` bins
    fitted on the SAE's training samples (docs/method.md §4).
    """

    sae: SAEConfig = field(default_factory=SAEConfig)
    activation: str = "result"
    reduction: str = "mean"
    sae_examples: int = 10
    count_examples: int | None = None
    score: str = "node"
    batch_size: int = 64
    code_kind: str = "argmax"
    code_levels: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.sae, SAEConfig):
            raise SaekitError(f"DiscoveryConfig.sae must be an SAEConfig, got {type(self.sae).__name__}.")
        if self.activation not in ACTIVATIONS:
            raise ActivationError(f"Unknown activation {self.activation!r}; use one of {ACTIVATIONS}.")
        if self.reduction not in REDUCTIONS:
            raise ActivationError(f"Unknown reduction {self.reduction!r}; use one of {REDUCTIONS}.")
        if self.score not in SCORES:
            raise SaekitError(f"Unknown score {self.score!r}; use one of {SCORES}.")
        if self.code_kind not in CODE_KINDS:
            raise SaekitError(f"Unknown code_kind {self.code_kind!r}; use one of {CODE_KINDS}.")
        if isinstance(self.code_levels, bool) or not isinstance(self.code_levels, int) or self.code_levels < 2:
            raise SaekitError(
                f"DiscoveryConfig.code_levels must be an integer of at least 2 (levels per "
                f"argmax code for code_kind='argmax_level'), got {self.code_levels!r}."
            )
        for name in ("sae_examples", "batch_size") + (("count_examples",) if self.count_examples is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SaekitError(f"DiscoveryConfig.{name} must be a positive integer, got {value!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DiscoveryConfig:
        reject_unknown_fields(cls, values, SaekitError)
        values = dict(values)
        if isinstance(values.get("sae"), dict):
            values["sae"] = SAEConfig.from_dict(values["sae"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DiscoveryConfig:
        return cls.from_dict(parse_json(text, SaekitError, "The DiscoveryConfig JSON", "Fix the text, or write it with to_json()."))


def paper_config(task_name: str, **overrides: Any) -> DiscoveryConfig:
    """The paper's configuration for a task (λ = 0.05 for docstring, else 0.02), with overrides.

    ``overrides`` are DiscoveryConfig fields, plus ``l1_coefficient`` / ``architecture`` /
    ``d_sae`` / ... which go to the SAEConfig.
    """
    if "sae" in overrides:
        raise SaekitError(
            "paper_config takes the SAE's fields themselves (paper_config(task, d_sae=100)); to "
            "use an SAEConfig of your own, build DiscoveryConfig(sae=...)."
        )
    reject_unknown_fields((DiscoveryConfig, SAEConfig), overrides, SaekitError)
    sae_fields = {f.name for f in fields(SAEConfig)}
    sae_values = {"l1_coefficient": PAPER_L1_COEFFICIENT.get(task_name, SAEConfig.l1_coefficient)}
    sae_values.update({k: v for k, v in overrides.items() if k in sae_fields})
    rest = {k: v for k, v in overrides.items() if k not in sae_fields}
    return DiscoveryConfig(sae=SAEConfig(**sae_values), **rest)


@dataclass(frozen=True)
class DiscoveryResult:
    """Head scores per seed, their ROC AUC against a ground truth, and the time each stage took."""

    task_name: str
    config: DiscoveryConfig
    seeds: tuple[int, ...]
    scores: Float[Tensor, "n_seeds n_layers n_heads"]
    auc_per_seed: tuple[float, ...] | None
    ground_truth: frozenset[tuple[int, int]] | None
    seconds: dict[str, float]
    sae_metrics: tuple[dict[str, Any], ...]
    """Scalar reconstruction metrics (mse, explained_variance, l0, dead_fraction, ...) of each
    seed's SAE on its training samples."""

    @property
    def mean_scores(self) -> Float[Tensor, "n_layers n_heads"]:
        return self.scores.mean(0)

    @property
    def auc_mean(self) -> float | None:
        return None if self.auc_per_seed is None else float(np.mean(self.auc_per_seed))

    @property
    def auc_std(self) -> float | None:
        """Sample standard deviation over seeds (0 for one seed)."""
        if self.auc_per_seed is None:
            return None
        return float(sample_sd(self.auc_per_seed))

    @property
    def ranked_heads(self) -> list[tuple[int, int]]:
        """Every (layer, head), highest mean score first."""
        return ranked_heads(self.mean_scores)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (scores per seed as nested lists), config included;
        NaN (a collapsed SAE's explained variance, say) becomes None, JSON's null."""
        return json_ready({
            "task": self.task_name,
            "config": self.config.to_dict(),
            "seeds": list(self.seeds),
            "scores": self.scores.tolist(),
            "auc": {"mean": self.auc_mean, "std": self.auc_std, "per_seed": list(self.auc_per_seed or [])},
            "ground_truth": sorted([list(head) for head in self.ground_truth or []]),
            "seconds": dict(self.seconds),
            "sae_metrics": list(self.sae_metrics),
        })


def _score(config: DiscoveryConfig, positive_codes: Tensor, negative_codes: Tensor) -> Tensor:
    if config.score == "edge":
        return edge_scores(positive_codes, negative_codes)
    return node_scores(positive_codes, negative_codes, normalised=config.score == "node_normalised")


def discover(
    model,
    task: ContrastiveTask,
    config: DiscoveryConfig | None = None,
    seeds: Iterable[int] = range(1),
    ground_truth: Iterable[tuple[int, int]] | None = None,
    activations: HeadActivations | None = None,
    progress: bool = True,
) -> DiscoveryResult:
    """Score every attention head of ``model`` on ``task``, once per seed.

    ``activations`` lets a notebook reuse head activations it already took (they must match
    ``config.activation`` / ``config.reduction``). With ``ground_truth`` (a set of (layer, head)
    pairs) each seed's scores get a ROC AUC. Each seed sets both the draw of SAE training
    examples and the SAE's initial weights (so ``config.sae.seed`` must stay at its default).

    On a CPU shared with other work, ``torch.set_num_threads(1)`` first: the SAE's small
    matrices gain nothing from more threads, and idle-waiting threads can slow training tenfold.
    """
    if activations is None:  # given activations, the model is not run and the task only counted
        check_model_and_task(model, task, "discover()")
    if config is None:
        config = paper_config(task.name)
    elif not isinstance(config, DiscoveryConfig):
        inside = " An SAEConfig goes inside one: DiscoveryConfig(sae=...)." if isinstance(config, SAEConfig) else ""
        raise SaekitError(
            f"discover's config must be a DiscoveryConfig (or None for the paper's), got "
            f"{type(config).__name__}.{inside}"
        )
    if config.sae.seed != SAEConfig.seed:
        raise SaekitError(
            f"discover seeds every run (its SAE's initial weights and its draw of examples) from "
            f"`seeds`, so config.sae.seed={config.sae.seed} would be ignored; pass "
            f"seeds=[{config.sae.seed}] instead."
        )
    seeds = check_seeds(seeds)
    n_pairs = task.n_pairs
    if config.sae_examples > 2 * n_pairs:
        raise TaskError(
            f"sae_examples={config.sae_examples} but the task has only {2 * n_pairs} examples "
            f"({n_pairs} pairs); lower sae_examples or generate more pairs."
        )
    count_pairs = n_pairs if config.count_examples is None else config.count_examples
    if count_pairs > n_pairs:
        raise TaskError(
            f"count_examples={count_pairs} pairs but the task has {n_pairs}; lower it or "
            f"generate more pairs."
        )
    ground_truth = None if ground_truth is None else frozenset(ground_truth)

    started = time.perf_counter()
    if activations is None:
        activations = head_activations(
            model, task, config.activation, config.reduction, config.batch_size, progress
        )
    elif (activations.activation, activations.reduction) != (config.activation, config.reduction):
        raise ActivationError(
            f"The activations given are {activations.activation}/{activations.reduction} but the "
            f"config asks for {config.activation}/{config.reduction}; recompute them or change "
            f"the config."
        )
    if len(activations.positive) != n_pairs:
        raise ActivationError(
            f"The activations given cover {len(activations.positive)} pairs but the task has "
            f"{n_pairs}; compute them from this task."
        )
    seconds = {"activations": time.perf_counter() - started, "sae": 0.0, "scoring": 0.0}
    examples = torch.cat([activations.positive, activations.negative])  # positives, then negatives
    shape = (activations.n_layers, activations.n_heads)
    if ground_truth is not None:
        heads_to_mask(ground_truth, *shape)  # a head set for another model fails here, not after training

    all_scores, aucs, sae_metrics = [], [], []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        tick = time.perf_counter()
        trained_on = torch.randperm(2 * n_pairs, generator=generator)[: config.sae_examples]
        samples = examples[trained_on.to(examples.device)].reshape(-1, activations.width)
        sae = train_sae(samples, replace(config.sae, seed=seed))
        metrics = reconstruction_metrics(sae, samples)
        sae_metrics.append({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        seconds["sae"] += time.perf_counter() - tick

        tick = time.perf_counter()
        counted = torch.randperm(n_pairs, generator=generator)[:count_pairs].to(examples.device)
        edges = None
        if config.code_kind == "argmax_level":
            with torch.no_grad():
                edges = level_edges(sae.encode(samples), config.code_levels, signed=sae.signed)
        codes = head_codes(sae, examples[torch.cat([counted, counted + n_pairs])], level_edges=edges)
        scores = _score(config, codes[:count_pairs], codes[count_pairs:]).reshape(shape).cpu()
        all_scores.append(scores)
        if ground_truth is not None:
            aucs.append(roc_auc(scores, ground_truth))
        seconds["scoring"] += time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    return DiscoveryResult(
        task_name=task.name,
        config=config,
        seeds=seeds,
        scores=torch.stack(all_scores),
        auc_per_seed=tuple(aucs) if ground_truth is not None else None,
        ground_truth=ground_truth,
        seconds=seconds,
        sae_metrics=tuple(sae_metrics),
    )
