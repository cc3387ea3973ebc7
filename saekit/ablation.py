"""Validate a circuit by ablation: keep its heads, knock out every other head, measure the task.

A head ranking is a hypothesis; ablation tests it. Every intervention here acts on one head's
``blocks.L.attn.hook_z`` (its attention-weighted values, before ``W_O``), never on the summed
attention output, so each head can be kept or replaced on its own. A knocked-out head's z is
replaced by one of three `AblationKind` values:

- ``MEAN`` (default): the mean z of a reference set (the task's negatives unless told otherwise)
  at the same position, taken separately for each group of prompts that share a template and a
  length. Prompts of one template and one length have the same token structure, so position p is
  the same slot in all of them; padding never enters a mean.
- ``RESAMPLE``: the z of the paired negative prompt (same positions, task information removed).
- ``ZERO``: zeros. Off-distribution (a head never outputs zero), so it overstates how much a
  head matters; offered to show that, never the default.

All runs go through `ablation_runs`, which evaluates many circuits at once by stacking
(circuit, prompt) rows into one batched forward pass. Hooks live only inside the model's
``hooks()`` context manager, so they are removed even when a forward pass raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saekit._checks import checks_model_and_task
from saekit._io import json_ready
from saekit.errors import HeadSetError, TaskError
from saekit.scoring import sample_sd
from saekit.tasks.ground_truth import HEAD_FORMATS, heads_to_mask
from saekit.tasks.base import NO_TOKEN, ContrastiveTask, MetricKind, compute_metric

if TYPE_CHECKING:
    from saekit._tl import HookedModel

#: A head set in any format `head_mask` reads.
HeadsLike = Any


class AblationKind(str, Enum):
    """What replaces the z of a head that is knocked out."""

    MEAN = "mean"
    """Mean z over a reference set, per template, length and position (on-distribution)."""
    RESAMPLE = "resample"
    """z of the paired negative prompt."""
    ZERO = "zero"
    """Zeros: off-distribution, overstates importance; shown for comparison only."""


def hook_z_name(layer: int) -> str:
    """The hook point of layer ``layer``'s per-head z (attention-weighted values, before W_O)."""
    return f"blocks.{layer}.attn.hook_z"


def model_shape(model: HookedModel) -> tuple[int, int]:
    """``(n_layers, n_heads)`` of a TransformerLens model."""
    return int(model.cfg.n_layers), int(model.cfg.n_heads)


# --------------------------------------------------------------------------------------------
# Head sets
# --------------------------------------------------------------------------------------------


def head_mask(
    heads: HeadsLike, n_layers: int, n_heads: int, allow_empty: bool = False
) -> Bool[Tensor, "n_layers n_heads"]:
    """Any head-set format as a boolean mask ``[n_layers, n_heads]`` (True = in the set).

    Reads (layer, head) pairs, "L.H" strings (also mixed), and boolean masks (torch or numpy).
    Raises `HeadSetError` for a head outside the model, anything else, and an empty set
    unless ``allow_empty`` (a circuit needs a head; a set of heads to outline in a plot does not).
    """
    if isinstance(heads, (Tensor, np.ndarray)):
        mask = torch.as_tensor(heads)
        if mask.dtype != torch.bool:
            raise HeadSetError(
                f"A head mask must be boolean, not {mask.dtype}. Use scores > threshold for a "
                f"mask, or give {HEAD_FORMATS}."
            )
        if tuple(mask.shape) != (n_layers, n_heads):
            raise HeadSetError(
                f"A head mask of shape {tuple(mask.shape)} does not fit a model with {n_layers} "
                f"layers and {n_heads} heads; it must have shape [{n_layers}, {n_heads}]."
            )
        mask = mask.clone().cpu()
    else:
        mask = heads_to_mask(heads, n_layers, n_heads)
    if not allow_empty and not mask.any():
        raise HeadSetError(
            "The head set is empty. A circuit needs at least one head; to measure the model with "
            "every head ablated use circuit_table(...).ablated_all."
        )
    return mask


def heads_from_mask(mask: Bool[Tensor, "n_layers n_heads"]) -> list[tuple[int, int]]:
    """The (layer, head) pairs of a mask, in layer-then-head order."""
    return [(int(layer), int(head)) for layer, head in mask.nonzero().tolist()]


# --------------------------------------------------------------------------------------------
# Replacement values
# --------------------------------------------------------------------------------------------


def capture_head_z(model: HookedModel, tokens: Int[Tensor, "batch seq"]) -> list[Float[Tensor, "batch seq n_heads d_head"]]:
    """Every layer's hook_z on ``tokens``, one tensor per layer (no gradients); the pass stops
    at the last layer's z."""
    from saekit.activations import _StopForward

    n_layers, _ = model_shape(model)
    captured: list[Tensor] = [torch.empty(0)] * n_layers

    def store(layer: int) -> Callable:
        def hook(z: Tensor, hook: Any) -> None:
            captured[layer] = z.detach()
            if layer == n_layers - 1:
                raise _StopForward

        return hook

    try:
        with torch.no_grad(), model.hooks(fwd_hooks=[(hook_z_name(l), store(l)) for l in range(n_layers)]):
            model(tokens.to(model.cfg.device))
    except _StopForward:
        pass
    return captured


def _group_ids(task: ContrastiveTask) -> tuple[Int[Tensor, "n_groups 2"], Int[Tensor, " n_pairs"]]:
    """Groups of prompts sharing (template, length): their keys and each prompt's group."""
    keys = torch.stack([task.template_ids, task.lengths], dim=1)
    return torch.unique(keys, dim=0, return_inverse=True)


@dataclass
class _MeanZ:
    """Per-group, per-position mean z of a reference set, one tensor per layer."""

    keys: Int[Tensor, "n_groups 2"]
    means: list[Float[Tensor, "n_groups seq n_heads d_head"]]

    def for_task(self, task: ContrastiveTask) -> Int[Tensor, " n_pairs"]:
        """The reference group of each of ``task``'s prompts."""
        keys = torch.stack([task.template_ids, task.lengths], dim=1)
        match = (keys[:, None, :] == self.keys[None, :, :]).all(-1)
        missing = ~match.any(1)
        if missing.any():
            template, length = keys[missing][0].tolist()
            raise TaskError(
                f"Mean ablation needs reference prompts of every (template, length) it evaluates, "
                f"but the reference set has none of template {template} with {length} tokens. "
                f"Use a reference set drawn from the same templates (the default: the task's "
                f"own negatives), or resample ablation."
            )
        return match.float().argmax(1)


def _mean_z(model: HookedModel, reference: ContrastiveTask, batch_size: int) -> _MeanZ:
    """Mean z of the reference set's negatives per (template, length) group and position."""
    n_layers, _ = model_shape(model)
    keys, group = _group_ids(reference)
    seq = reference.positive_tokens.shape[1]
    sums: list[Tensor] = []
    counts = torch.bincount(group, minlength=len(keys)).to(model.cfg.device)
    for start in range(0, reference.n_pairs, batch_size):
        part = reference.subset(slice(start, start + batch_size))
        z_layers = capture_head_z(model, part.negative_tokens)
        index = group[start : start + batch_size].to(model.cfg.device)
        for layer, z in enumerate(z_layers):
            if len(sums) <= layer:
                sums.append(z.new_zeros(len(keys), seq, *z.shape[2:]))
            sums[layer][:, : z.shape[1]].index_add_(0, index, z)
    return _MeanZ(keys=keys, means=[s / counts[:, None, None, None] for s in sums])


def _replacement_source(
    model: HookedModel,
    task: ContrastiveTask,
    kind: AblationKind,
    reference: ContrastiveTask | None,
    batch_size: int,
) -> Callable[[slice, ContrastiveTask], list[Tensor] | None]:
    """A function giving, for a slice of ``task``'s pairs, each layer's replacement z (None = zeros)."""
    if kind is AblationKind.ZERO:
        return lambda rows, part: None
    if kind is AblationKind.RESAMPLE:
        if reference is not None:
            raise TaskError(
                "Resample ablation takes each prompt's paired negative; it has no reference set. "
                "Drop reference=, or use mean ablation."
            )
        return lambda rows, part: capture_head_z(model, part.negative_tokens)
    mean_z = _mean_z(model, reference or task, batch_size)
    group_of_prompt = mean_z.for_task(task).to(model.cfg.device)

    def mean_rows(rows: slice, part: ContrastiveTask) -> list[Tensor]:
        seq = part.positive_tokens.shape[1]
        return [m[group_of_prompt[rows], :seq] for m in mean_z.means]

    return mean_rows


# --------------------------------------------------------------------------------------------
# Forward passes that compute only what the metric reads
# --------------------------------------------------------------------------------------------


def final_residual(
    model: HookedModel,
    tokens: Int[Tensor, "rows seq"],
    positions: Int[Tensor, " rows"],
    fwd_hooks: list[tuple[str, Callable]] | None = None,
) -> Float[Tensor, "rows d_model"]:
    """What enters the unembedding (the final residual, after the last layer norm) at one
    position per row, from a forward pass under ``fwd_hooks``.

    The pass stops before the unembedding: with a 50k vocabulary that is about a third of a
    GPT-2 pass, and its ``[rows, seq, vocab]`` output most of the memory. Unembed the rows with
    `unembed`. Gradients flow if enabled.
    """
    from saekit.activations import _StopForward

    captured: list[Tensor] = []

    def stop(module: Any, args: tuple[Tensor, ...]) -> None:
        captured.append(args[0])
        raise _StopForward

    handle = model.unembed.register_forward_pre_hook(stop)
    try:
        with model.hooks(fwd_hooks=fwd_hooks or []):
            model(tokens.to(model.cfg.device))
    except _StopForward:
        pass
    finally:
        handle.remove()
    resid = captured[0]
    return resid[torch.arange(len(resid), device=resid.device), positions.to(resid.device)]


def unembed(
    model: HookedModel, resid: Float[Tensor, "rows d_model"], columns: Int[Tensor, " k"] | None = None
) -> Float[Tensor, "rows k"]:
    """Logits of ``resid`` (from `final_residual`) for the tokens in ``columns`` (all if None)."""
    if columns is None:
        return resid @ model.W_U + model.b_U
    columns = columns.to(resid.device)
    return resid @ model.W_U[:, columns] + model.b_U[columns]


def scored_tokens(
    task: ContrastiveTask, full_vocabulary: bool = False
) -> tuple[Int[Tensor, " k"] | None, Int[Tensor, "n_pairs n_answers"], Int[Tensor, "n_pairs n_wrong"]]:
    """The logits ``task``'s metric reads: ``(columns, answer_tokens, wrong_tokens)`` with the
    tokens as indices into ``columns``, for `unembed` and ``compute_metric``.

    A logit difference reads only the answer and wrong tokens; a probability difference (and
    a KL, ``full_vocabulary``) reads every logit through the softmax, so ``columns`` is None.
    """
    if full_vocabulary or task.metric is MetricKind.PROB_DIFF:
        return None, task.answer_tokens, task.wrong_tokens
    ids = torch.cat([task.answer_tokens.flatten(), task.wrong_tokens.flatten()])
    columns = ids[ids != NO_TOKEN].unique()

    def as_columns(tokens: Tensor) -> Tensor:
        return torch.where(tokens == NO_TOKEN, tokens, torch.searchsorted(columns, tokens))

    return columns, as_columns(task.answer_tokens), as_columns(task.wrong_tokens)


# --------------------------------------------------------------------------------------------
# The batched core
# --------------------------------------------------------------------------------------------


@dataclass
class AblationRuns:
    """Task metric and KL to the full model for many circuits on every positive prompt."""

    metric: Float[Tensor, "n_circuits n_pairs"]
    kl: Float[Tensor, "n_circuits n_pairs"] | None
    """KL(full model ‖ circuit) of the next-token distribution at the answer position (None
    where a caller asked for the metric alone)."""
    clean_metric: Float[Tensor, " n_pairs"] | None
    """The full model's metric (None where a caller asked for the circuits alone)."""


@checks_model_and_task
def ablation_runs(
    model: HookedModel,
    task: ContrastiveTask,
    keep: Bool[Tensor, "n_circuits n_layers n_heads"],
    kind: AblationKind | str = AblationKind.MEAN,
    reference: ContrastiveTask | None = None,
    batch_size: int = 64,
    kl: bool = True,
) -> AblationRuns:
    """Run the positives once per circuit: heads where ``keep`` is True stay, the rest are ablated.

    ``batch_size`` is the number of sequences per forward pass: rows are (circuit, prompt)
    pairs, so with few prompts several circuits share one pass. ``reference`` is the set whose
    negatives give the mean for mean ablation (default: ``task`` itself). Each pass unembeds
    only the answer position; with ``kl=False`` (no KL: ``runs.kl`` is None) only the tokens
    the metric reads, where it reads only some (a logit difference).
    """
    kind = _ablation_kind(kind)
    n_layers, n_heads = model_shape(model)
    if keep.dim() != 3 or tuple(keep.shape[1:]) != (n_layers, n_heads) or keep.dtype != torch.bool:
        raise HeadSetError(
            f"keep must be a boolean tensor [n_circuits, {n_layers}, {n_heads}], not "
            f"{keep.dtype} {tuple(keep.shape)}; build one mask per circuit with head_mask()."
        )
    if batch_size < 1:
        raise TaskError(f"batch_size must be at least 1, not {batch_size}.")
    replacement_for = _replacement_source(model, task, kind, reference, batch_size)
    return _run_circuits(model, task, keep, replacement_for, batch_size, kl=kl)


def _run_circuits(
    model: HookedModel,
    task: ContrastiveTask,
    keep: Bool[Tensor, "n_circuits n_layers n_heads"],
    replacement_for: Callable[[slice, ContrastiveTask], list[Tensor] | None],
    batch_size: int,
    kl: bool = True,
    clean: bool = True,
    clean_passes: dict[int, tuple[Tensor, list[Tensor] | None]] | None = None,
) -> AblationRuns:
    """`ablation_runs` with its arguments checked and its replacements prepared.

    Without ``kl`` only the logits the metric reads are computed (see `scored_tokens`);
    without ``clean`` (and ``kl``) the full model's metric is not returned. A circuit given more
    than once (the empty circuit at every curve's start, say) runs once. ``clean_passes`` keeps
    each batch's clean pass (`_clean_pass`, keyed by its first prompt) for the next call on the
    same prompts.
    """
    clean_passes = {} if clean_passes is None else clean_passes
    device = model.cfg.device
    keep, circuit_of_row = torch.unique(keep, dim=0, return_inverse=True)
    keep = keep.to(device)
    prompts_per_pass = min(task.n_pairs, batch_size)
    circuits_per_pass = max(1, batch_size // prompts_per_pass)
    metric = torch.empty(len(keep), task.n_pairs)
    kl_values = torch.empty(len(keep), task.n_pairs) if kl else None
    clean_metric = torch.empty(task.n_pairs) if clean or kl else None
    with torch.no_grad():
        for start in range(0, task.n_pairs, prompts_per_pass):
            rows = slice(start, start + prompts_per_pass)
            part = task.subset(rows)
            tokens = part.positive_tokens.to(device)
            columns, answers, wrongs = scored_tokens(part, full_vocabulary=kl)
            answers, wrongs = answers.to(device), wrongs.to(device)
            if start not in clean_passes:
                clean_passes[start] = _clean_pass(model, tokens, part.lengths - 1)
            clean_final, resid_pre = clean_passes[start]
            if clean_metric is not None:
                clean_logits = unembed(model, clean_final, columns)
                clean_metric[rows] = compute_metric(clean_logits, answers, wrongs, part.metric).cpu()
                clean_logprobs = clean_logits.log_softmax(-1)
            replacement = replacement_for(rows, part)
            for first in range(0, len(keep), circuits_per_pass):
                chunk = keep[first : first + circuits_per_pass]
                logits = _run_kept(model, part, tokens, chunk, replacement, columns, resid_pre)
                circuits = slice(first, first + len(chunk))
                repeats = (len(chunk), 1)
                metric[circuits, rows] = compute_metric(
                    logits, answers.repeat(repeats), wrongs.repeat(repeats), part.metric
                ).view(len(chunk), -1).cpu()
                if kl_values is not None:
                    logprobs = logits.log_softmax(-1).view(len(chunk), part.n_pairs, -1)
                    kl_values[circuits, rows] = (
                        (clean_logprobs.exp() * (clean_logprobs - logprobs)).sum(-1).clamp(min=0).cpu()
                    )
    return AblationRuns(
        metric=metric[circuit_of_row],
        kl=None if kl_values is None else kl_values[circuit_of_row],
        clean_metric=clean_metric,
    )


def _ablation_kind(kind: AblationKind | str) -> AblationKind:
    try:
        return AblationKind(kind)
    except ValueError:
        raise TaskError(
            f"Unknown ablation {kind!r}; use one of {[k.value for k in AblationKind]}."
        ) from None


def _run_kept(
    model: HookedModel,
    part: ContrastiveTask,
    tokens: Int[Tensor, "n_prompts seq"],
    keep: Bool[Tensor, "n_circuits n_layers n_heads"],
    replacement: list[Float[Tensor, "n_prompts seq n_heads d_head"]] | None,
    columns: Int[Tensor, " k"] | None,
    resid_pre: list[Float[Tensor, "n_prompts seq d_model"]] | None = None,
) -> Float[Tensor, "n_rows k"]:
    """Answer logits (of ``columns``) of rows (circuit c, prompt i) = c * n_prompts + i with
    ablated heads replaced: one forward pass over every circuit's copy of the prompts.

    Given the clean residual stream at each block's input (``resid_pre``), the pass starts at
    the first layer any circuit ablates: the blocks before it compute what the clean pass did.
    """
    n_circuits, n_prompts = len(keep), len(tokens)

    def hook_for(layer: int) -> Callable:
        keep_layer = keep[:, layer, None, None, :, None]  # circuit, prompt, position, head, d_head

        def hook(z: Tensor, hook: Any) -> Tensor:
            by_circuit = z.reshape(n_circuits, n_prompts, *z.shape[1:])
            other = 0.0 if replacement is None else replacement[layer][None]
            return torch.where(keep_layer, by_circuit, other).reshape(z.shape)

        return hook

    ablated_layers = [l for l in range(keep.shape[1]) if not keep[:, l].all()]
    hooks = [(hook_z_name(l), hook_for(l)) for l in ablated_layers]
    positions = (part.lengths - 1).repeat(n_circuits)
    if resid_pre is not None and ablated_layers and ablated_layers[0] > 0:
        first = ablated_layers[0]
        resid = _final_residual_from(model, resid_pre[first].repeat(n_circuits, 1, 1), first, positions, hooks)
    else:
        resid = final_residual(model, tokens.repeat(n_circuits, 1), positions, hooks)
    return unembed(model, resid, columns)


def _clean_pass(
    model: HookedModel, tokens: Int[Tensor, "rows seq"], positions: Int[Tensor, " rows"]
) -> tuple[Float[Tensor, "rows d_model"], list[Float[Tensor, "rows seq d_model"]] | None]:
    """The clean final residual at ``positions``, and the residual stream entering each block
    where ablated passes may start from it (`_can_start_late`; else None)."""
    resid_pre: list[Tensor] = []
    hooks = [(f"blocks.{layer}.hook_resid_pre", lambda resid, hook: resid_pre.append(resid.clone()))
             for layer in range(model.cfg.n_layers)]
    clean_final = final_residual(model, tokens, positions, hooks)
    return clean_final, resid_pre if _can_start_late(model, resid_pre, clean_final, positions) else None


def _final_residual_from(
    model: HookedModel,
    resid: Float[Tensor, "rows seq d_model"],
    first_layer: int,
    positions: Int[Tensor, " rows"],
    fwd_hooks: list[tuple[str, Callable]] | None = None,
) -> Float[Tensor, "rows d_model"]:
    """`final_residual` of a pass that starts at block ``first_layer`` from its input ``resid``."""
    with model.hooks(fwd_hooks=fwd_hooks or []):
        for block in model.blocks[first_layer:]:
            resid = block(resid)
            resid = resid[0] if isinstance(resid, tuple) else resid
        final = model.ln_final(resid)
    return final[torch.arange(len(final), device=final.device), positions.to(final.device)]


@torch.no_grad()
def _can_start_late(
    model: HookedModel,
    resid_pre: list[Float[Tensor, "rows seq d_model"]],
    clean_final: Float[Tensor, "rows d_model"],
    positions: Int[Tensor, " rows"],
) -> bool:
    """Whether running the blocks from the last one on reproduces the clean pass: the blocks of
    some architectures need arguments a plain call lacks (masks, rotary tables), and then every
    pass starts at the embedding."""
    if len(resid_pre) < 2:
        return False
    late = _final_residual_from(model, resid_pre[-1], len(resid_pre) - 1, positions)
    return bool(torch.allclose(late, clean_final, rtol=1e-4, atol=1e-4 * float(clean_final.abs().max())))


# --------------------------------------------------------------------------------------------
# Per-head patching
# --------------------------------------------------------------------------------------------


@checks_model_and_task
def head_patching_prompt_effects(
    model: HookedModel, task: ContrastiveTask, batch_size: int = 64
) -> Float[Tensor, "n_layers n_heads n_pairs"]:
    """Per-head activation patching, per prompt: how much each positive's metric moves when one
    head's hook_z is replaced by its value on the paired negative (the patched metric minus the
    clean one). Their spread over prompts gives the standard error of `head_patching_effects`.
    Costs one forward pass over the task per head, without the unembedding of unscored
    positions and tokens (batched: several heads' patches share a pass when prompts are few).
    """
    if batch_size < 1:
        raise TaskError(f"batch_size must be at least 1, not {batch_size}.")
    n_layers, n_heads = model_shape(model)
    keep = ~torch.eye(n_layers * n_heads, dtype=torch.bool).view(-1, n_layers, n_heads)
    replacement_for = _replacement_source(model, task, AblationKind.RESAMPLE, None, batch_size)
    runs = _run_circuits(model, task, keep, replacement_for, batch_size, kl=False)
    return (runs.metric - runs.clean_metric).view(n_layers, n_heads, -1)


@checks_model_and_task
def head_patching_effects(
    model: HookedModel, task: ContrastiveTask, batch_size: int = 64
) -> Float[Tensor, "n_layers n_heads"]:
    """Per-head activation patching: how much the metric moves when one head sees the negative.

    For each head separately: the mean metric over the positives with that head's hook_z
    replaced by its value on the paired negative, minus the clean mean metric (the mean over
    prompts of `head_patching_prompt_effects`).
    """
    return head_patching_prompt_effects(model, task, batch_size).mean(-1)


# --------------------------------------------------------------------------------------------
# Circuit evaluation
# --------------------------------------------------------------------------------------------


def faithfulness(circuit: float | Tensor, full: float, ablated_all: float) -> float | Tensor:
    """Normalised faithfulness ``(F(C) − F(∅)) / (F(M) − F(∅))``: 0 = no better than ablating
    everything, 1 = the full model; elementwise for a tensor of circuits' metrics. NaN when the
    full and ablated model score the same."""
    spread = full - ablated_all
    return (circuit - ablated_all) / spread if spread != 0 else math.nan


def kl_faithfulness(kl_circuit: float, kl_ablated_all: float) -> float:
    """``1 − KL(M‖C) / KL(M‖∅)``: 1 = the circuit's next-token distribution equals the model's."""
    return 1 - kl_circuit / kl_ablated_all if kl_ablated_all != 0 else math.nan


@dataclass
class CircuitResult:
    """One circuit's task metric when every head outside it is ablated (means over prompts)."""

    heads: list[tuple[int, int]]
    n_heads: int
    metric: float
    faithfulness: float
    kl: float
    """KL(full model ‖ circuit) at the answer position."""
    kl_faithfulness: float


@dataclass
class Baselines:
    """The two ends every circuit is measured between: full model M and everything ablated ∅."""

    metric_name: str
    ablation: str
    full: float
    ablated_all: float
    ablated_all_kl: float

    def result(self, mask: Bool[Tensor, "n_layers n_heads"], metric: float, kl: float) -> CircuitResult:
        return CircuitResult(
            heads=heads_from_mask(mask),
            n_heads=int(mask.sum()),
            metric=metric,
            faithfulness=faithfulness(metric, self.full, self.ablated_all),
            kl=kl,
            kl_faithfulness=kl_faithfulness(kl, self.ablated_all_kl),
        )


def _runs_with_empty(
    model: HookedModel,
    task: ContrastiveTask,
    keep: Bool[Tensor, "n_circuits n_layers n_heads"],
    kind: AblationKind | str,
    reference: ContrastiveTask | None,
    batch_size: int,
    kl: bool = True,
) -> tuple[Baselines, Float[Tensor, " n_circuits"], Float[Tensor, " n_circuits"] | None]:
    """Mean metric and KL of each circuit, plus the full / all-ablated ends, in one batched run."""
    kind = _ablation_kind(kind)
    empty = torch.zeros(1, *keep.shape[1:], dtype=torch.bool)
    runs = ablation_runs(model, task, torch.cat([keep, empty]), kind, reference, batch_size, kl=kl)
    circuits_kl = None if runs.kl is None else runs.kl.mean(1)[:-1]
    return _ends(task, kind, runs, empty_row=-1), runs.metric.mean(1)[:-1], circuits_kl


def _ends(task: ContrastiveTask, kind: AblationKind, runs: AblationRuns, empty_row: int) -> Baselines:
    """The full model (the clean runs) and everything ablated (row ``empty_row`` of ``runs``)."""
    return Baselines(
        metric_name=task.metric.value,
        ablation=kind.value,
        full=float(runs.clean_metric.mean()),
        ablated_all=float(runs.metric[empty_row].mean()),
        ablated_all_kl=math.nan if runs.kl is None else float(runs.kl[empty_row].mean()),
    )


@checks_model_and_task
def evaluate_circuit(
    model: HookedModel,
    task: ContrastiveTask,
    heads: HeadsLike,
    kind: AblationKind | str = AblationKind.MEAN,
    reference: ContrastiveTask | None = None,
    batch_size: int = 64,
) -> tuple[CircuitResult, Baselines]:
    """Keep ``heads``, ablate the rest: the circuit's metric, faithfulness and KL, and the ends."""
    results, ends = evaluate_circuits(model, task, [heads], kind, reference, batch_size)
    return results[0], ends


@checks_model_and_task
def evaluate_circuits(
    model: HookedModel,
    task: ContrastiveTask,
    circuits: Iterable[HeadsLike],
    kind: AblationKind | str = AblationKind.MEAN,
    reference: ContrastiveTask | None = None,
    batch_size: int = 64,
) -> tuple[list[CircuitResult], Baselines]:
    """`evaluate_circuit` for several circuits in one batched run: the full model and everything
    ablated, which every circuit is measured between, run once."""
    masks = torch.stack([head_mask(heads, *model_shape(model)) for heads in circuits])
    ends, metric, kl = _runs_with_empty(model, task, masks, kind, reference, batch_size)
    return [ends.result(mask, float(m), float(k)) for mask, m, k in zip(masks, metric, kl)], ends


@dataclass
class RandomCircuits:
    """Random circuits of one size: mean and sd over seeded draws (each draw's numbers kept)."""

    n_heads: int
    seeds: list[int]
    metrics: list[float]
    faithfulnesses: list[float]
    metric_mean: float = field(init=False)
    metric_std: float = field(init=False)
    faithfulness_mean: float = field(init=False)
    faithfulness_std: float = field(init=False)

    def __post_init__(self) -> None:
        self.metric_mean, self.metric_std = float(np.mean(self.metrics)), float(sample_sd(self.metrics))
        self.faithfulness_mean = float(np.mean(self.faithfulnesses))
        self.faithfulness_std = float(sample_sd(self.faithfulnesses))


@dataclass
class CircuitTable:
    """The paper's table 4 for one model and task: full, all ablated, ground truth, found, random."""

    metric_name: str
    ablation: str
    full: float
    ablated_all: float
    ground_truth_circuit: CircuitResult | None
    found_circuit: CircuitResult
    random_circuit: RandomCircuits

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (floats, ints, lists); NaN (faithfulness when the full and
        the ablated model score the same) becomes None, JSON's null."""
        return json_ready(asdict(self))


def random_head_masks(
    n_layers: int, n_heads: int, size: int, seeds: Iterable[int]
) -> Bool[Tensor, "n_draws n_layers n_heads"]:
    """One random head set of ``size`` heads per seed (each from its own local generator)."""
    masks = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(n_layers * n_heads, generator=generator)[:size]
        masks.append(torch.zeros(n_layers * n_heads, dtype=torch.bool).index_fill_(0, chosen, True))
    return torch.stack(masks).view(-1, n_layers, n_heads)


def found_circuit_mask(
    scores: Float[Tensor, "n_layers n_heads"], top_k: int | None = None, threshold: float | None = None
) -> Bool[Tensor, "n_layers n_heads"]:
    """The heads a score map selects: the ``top_k`` best, or every head scoring >= ``threshold``."""
    from saekit.scoring import top_k_mask

    if (top_k is None) == (threshold is None):
        raise HeadSetError("Choose the found circuit with exactly one of top_k= or threshold=.")
    mask = top_k_mask(scores, top_k) if top_k is not None else scores >= threshold
    if not mask.any():
        raise HeadSetError(
            f"No head is selected (top_k={top_k}, threshold={threshold}); use top_k >= 1 or a "
            f"threshold at or below the best score ({float(scores.max()):.4g})."
        )
    return mask.cpu()


@checks_model_and_task
def circuit_table(
    model: HookedModel,
    task: ContrastiveTask,
    scores: Float[Tensor, "n_layers n_heads"],
    ground_truth: HeadsLike | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    kind: AblationKind | str = AblationKind.MEAN,
    n_random: int = 5,
    seed: int = 0,
    reference: ContrastiveTask | None = None,
    batch_size: int = 64,
) -> CircuitTable:
    """Table 4 of the paper for any model, task and head scores (higher = more in the circuit).

    The found circuit is the ``top_k`` heads (default: as many as the ground truth) or those at
    or above ``threshold``; the random circuits have the found circuit's size and are drawn with
    seeds ``seed .. seed + n_random - 1``. Every circuit runs in one batched pass.
    """
    n_layers, n_heads = model_shape(model)
    if tuple(scores.shape) != (n_layers, n_heads):
        raise HeadSetError(
            f"Scores of shape {tuple(scores.shape)} do not fit a model of {n_layers} layers x "
            f"{n_heads} heads; pass one score per head as [{n_layers}, {n_heads}]."
        )
    if n_random < 1:
        raise HeadSetError(f"n_random must be at least 1, not {n_random}.")
    truth = None if ground_truth is None else head_mask(ground_truth, n_layers, n_heads)
    if top_k is None and threshold is None:
        if truth is None:
            raise HeadSetError("Give top_k= or threshold= (or a ground truth, whose size is the default k).")
        top_k = int(truth.sum())
    found = found_circuit_mask(scores.detach().cpu(), top_k, threshold)
    seeds = list(range(seed, seed + n_random))
    random = random_head_masks(n_layers, n_heads, int(found.sum()), seeds)
    circuits = torch.cat([found[None], random] + ([] if truth is None else [truth[None]]))
    ends, metric, kl = _runs_with_empty(model, task, circuits, kind, reference, batch_size)
    random_results = [ends.result(random[i], float(metric[1 + i]), float(kl[1 + i])) for i in range(n_random)]
    return CircuitTable(
        metric_name=ends.metric_name,
        ablation=ends.ablation,
        full=ends.full,
        ablated_all=ends.ablated_all,
        ground_truth_circuit=None if truth is None else ends.result(truth, float(metric[-1]), float(kl[-1])),
        found_circuit=ends.result(found, float(metric[0]), float(kl[0])),
        random_circuit=RandomCircuits(
            n_heads=int(found.sum()),
            seeds=seeds,
            metrics=[r.metric for r in random_results],
            faithfulnesses=[r.faithfulness for r in random_results],
        ),
    )


# --------------------------------------------------------------------------------------------
# Circuit pruning
# --------------------------------------------------------------------------------------------


@dataclass
class PrunedCircuit:
    """What `prune_heads` kept, and what each head was worth when it was tested."""

    threshold: float
    ends: Baselines
    circuit: CircuitResult
    effects: Float[Tensor, "n_layers n_heads"]
    """Faithfulness the running circuit lost when the head was ablated from it, at the moment it
    was tested (negative: the circuit scored higher without it). A head is kept exactly where
    ``|effect| >= threshold``."""


@checks_model_and_task
def prune_heads(
    model: HookedModel,
    task: ContrastiveTask,
    threshold: float = 0.02,
    kind: AblationKind | str = AblationKind.MEAN,
    reference: ContrastiveTask | None = None,
    batch_size: int = 64,
) -> PrunedCircuit:
    """ACDC (Conmy et al. 2023) with heads as the nodes: a circuit found by ablating, not by ranking.

    Start from the full model and visit the heads from the last layer to the first (within a
    layer, the last head first), so that each head is tested while everything downstream of it is
    already settled. A head is ablated for good when that moves the running circuit's normalised
    faithfulness by less than ``threshold`` in either direction; otherwise it stays. Unlike
    patching one head at a time, this keeps the heads a task needs but that read the same input on
    a positive and its negative (previous-token heads), because mean ablation removes what they
    carry. Costs one ablated forward pass over the task per head, in sequence (resample ablation
    adds one over the negatives, for their z).
    """
    kind = _ablation_kind(kind)
    if not math.isfinite(threshold) or threshold < 0:
        raise HeadSetError(f"threshold is a share of the full model's faithfulness, 0 or more; not {threshold}.")
    if batch_size < 1:
        raise TaskError(f"batch_size must be at least 1, not {batch_size}.")
    n_layers, n_heads = model_shape(model)
    # Prepared once: the means (a pass over the reference set) serve every run below.
    replacement_for = _replacement_source(model, task, kind, reference, batch_size)
    kept = torch.ones(n_layers, n_heads, dtype=torch.bool)
    clean_passes: dict = {}  # every run below starts from the same clean passes
    ends = _ends(task, kind, _run_circuits(model, task, ~kept[None], replacement_for, batch_size,
                                           clean_passes=clean_passes), empty_row=0)
    if ends.full == ends.ablated_all:
        raise TaskError(
            f"The full model and the fully ablated one score the same ({ends.full:.4g}), so no head "
            f"moves the metric and there is nothing to prune against; check that the model does the task."
        )

    def faithfulness_without(layer: int, head: int) -> float:
        keep = kept.clone()
        keep[layer, head] = False
        runs = _run_circuits(model, task, keep[None], replacement_for, batch_size, kl=False, clean=False,
                             clean_passes=clean_passes)
        return faithfulness(float(runs.metric.mean()), ends.full, ends.ablated_all)

    current = 1.0  # the full model's faithfulness
    effects = torch.zeros(n_layers, n_heads)
    with torch.no_grad():
        for index in reversed(range(n_layers * n_heads)):
            layer, head = divmod(index, n_heads)
            candidate = faithfulness_without(layer, head)
            effects[layer, head] = current - candidate
            if abs(current - candidate) < threshold:
                kept[layer, head] = False
                current = candidate
    final = _run_circuits(model, task, kept[None], replacement_for, batch_size, clean_passes=clean_passes)
    return PrunedCircuit(threshold, ends, ends.result(kept, float(final.metric.mean()), float(final.kl.mean())), effects)


# --------------------------------------------------------------------------------------------
# Faithfulness curves
# --------------------------------------------------------------------------------------------


@dataclass
class FaithfulnessCurves:
    """The metric as heads are added one by one: in score order, and in seeded random orders."""

    metric_name: str
    ablation: str
    full: float
    ablated_all: float
    n_kept: list[int]
    """Number of heads kept at each point (0 .. n_heads_total unless ``ks`` chose fewer)."""
    score_order: list[tuple[int, int]]
    score_metric: list[float]
    random_seeds: list[int]
    random_metric: list[list[float]]
    """One curve per seed, over the same ``n_kept`` points."""

    def normalised(self, values: Iterable[float]) -> list[float]:
        """Values as normalised faithfulness (0 = all ablated, 1 = full model)."""
        return [faithfulness(v, self.full, self.ablated_all) for v in values]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, NaN as None (JSON's null)."""
        return json_ready(asdict(self))


@checks_model_and_task
def faithfulness_curves(
    model: HookedModel,
    task: ContrastiveTask,
    scores: Float[Tensor, "n_layers n_heads"],
    kind: AblationKind | str = AblationKind.MEAN,
    n_random: int = 5,
    seed: int = 0,
    ks: Iterable[int] | None = None,
    reference: ContrastiveTask | None = None,
    batch_size: int = 64,
) -> FaithfulnessCurves:
    """The task metric keeping the best k heads by score, vs k random heads, for k in ``ks``.

    ``ks`` defaults to every k from 0 to all heads; give fewer points for a large model. All
    ``(1 + n_random) * len(ks)`` circuits are stacked into batched forward passes.
    """
    from saekit.scoring import ranked_heads

    n_layers, n_heads = model_shape(model)
    total = n_layers * n_heads
    if tuple(scores.shape) != (n_layers, n_heads):
        raise HeadSetError(
            f"Scores of shape {tuple(scores.shape)} do not fit a model of {n_layers} layers x "
            f"{n_heads} heads; pass one score per head as [{n_layers}, {n_heads}]."
        )
    ks = list(range(total + 1)) if ks is None else sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 0 or ks[-1] > total:
        raise HeadSetError(f"ks must be head counts between 0 and {total}, not {ks}.")
    order = ranked_heads(scores.detach().cpu())
    seeds = list(range(seed, seed + n_random))
    flat_orders = torch.stack(
        [torch.tensor([layer * n_heads + head for layer, head in order])]
        + [torch.randperm(total, generator=torch.Generator().manual_seed(s)) for s in seeds]
    )  # [1 + n_random, total]: head added at each step
    rank = torch.empty_like(flat_orders).scatter_(1, flat_orders, torch.arange(total).expand_as(flat_orders))
    keep = rank[:, None, :] < torch.tensor(ks)[None, :, None]  # [orders, ks, total]
    ends, metric, _ = _runs_with_empty(
        model, task, keep.view(-1, n_layers, n_heads), kind, reference, batch_size, kl=False
    )
    metric = metric.view(1 + n_random, len(ks))
    return FaithfulnessCurves(
        metric_name=ends.metric_name,
        ablation=ends.ablation,
        full=ends.full,
        ablated_all=ends.ablated_all,
        n_kept=ks,
        score_order=order,
        score_metric=metric[0].tolist(),
        random_seeds=seeds,
        random_metric=metric[1:].tolist(),
    )
