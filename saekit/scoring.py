"""Score heads from their codes, and measure the scores against a ground-truth head set.

Node score (docs/method.md §5): for head h, ``P_h`` is the set of codes it takes on positives and
``N_h`` on negatives; ``score_h = |P_h \\ N_h|``, or that divided by ``|P_h ∪ N_h|``. A head
whose code changes when the task's information is removed is doing task work.

Edge score (docs/method.md §5), as the authors' code computes it: for each ordered pair of
distinct heads, count the code pairs ``(code(h1), code(h2))`` that co-occur in some positive and
in no negative; rank all ``n_heads²`` ordered pairs (self pairs included, at count 0) and count
how often each head appears among the top ``n_heads² // 4`` of them.

Codes are integers in ``[0, n_codes)`` or `saekit.codes.NO_CODE`; "no code" counts as a
code value of its own. Scores from codes are flat over heads (index ``layer * n_heads + head``);
the evaluation functions take them per layer, ``(n_layers, n_heads)``, to match head sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saekit.codes import NO_CODE
from saekit.errors import HeadSetError, SaekitError, SAEError
from saekit.tasks.ground_truth import heads_to_mask

#: Upper bound on the number of (example, head pair) keys the edge score builds at once.
EDGE_CHUNK_KEYS = 1 << 23


def _check_codes(positive_codes: Tensor, negative_codes: Tensor) -> None:
    for codes in (positive_codes, negative_codes):
        if not isinstance(codes, Tensor) or codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
            kind = codes.dtype if isinstance(codes, Tensor) else type(codes).__name__
            raise SAEError(
                f"Codes must be an integer tensor (latent indices), not {kind}: latent "
                f"activations are no codes. Turn latents into codes with "
                f"saekit.codes.codes_from_latents, or encode head vectors with head_codes."
            )
    if positive_codes.ndim != 2 or negative_codes.ndim != 2:
        raise SAEError(
            f"Codes must be (n_examples, n_heads_total); got {tuple(positive_codes.shape)} and "
            f"{tuple(negative_codes.shape)}. Use saekit.codes.head_codes to make them."
        )
    if positive_codes.shape[1] != negative_codes.shape[1]:
        raise SAEError(
            f"Positive codes cover {positive_codes.shape[1]} heads but negative codes "
            f"{negative_codes.shape[1]}; encode both sides with the same model and SAE."
        )
    if len(positive_codes) == 0 or len(negative_codes) == 0:
        raise SAEError("Scoring needs at least one positive and one negative example.")
    if min(int(positive_codes.min()), int(negative_codes.min())) < NO_CODE:
        raise SAEError(f"Codes must be >= {NO_CODE} (NO_CODE); these hold smaller values.")


def _symbols(codes: Int[Tensor, "n n_heads"]) -> Int[Tensor, "n n_heads"]:
    """Codes shifted by one so that NO_CODE becomes symbol 0 and every symbol is >= 0."""
    return codes.long() - NO_CODE


def code_occupancy(codes: Int[Tensor, "n_examples n_heads"], n_symbols: int) -> Bool[Tensor, "n_heads n_symbols"]:
    """Which code symbols (code + 1; 0 is NO_CODE) each head takes in any example."""
    occupied = torch.zeros(codes.shape[1], n_symbols, dtype=torch.bool, device=codes.device)
    return occupied.scatter_(1, _symbols(codes).T, True)


def node_scores(
    positive_codes: Int[Tensor, "n_pos n_heads_total"],
    negative_codes: Int[Tensor, "n_neg n_heads_total"],
    normalised: bool = False,
) -> Float[Tensor, " n_heads_total"]:
    """``|P_h \\ N_h|`` per head (``normalised``: divided by ``|P_h ∪ N_h|``), all heads at once."""
    _check_codes(positive_codes, negative_codes)
    n_symbols = int(max(positive_codes.max(), negative_codes.max())) - NO_CODE + 1
    on_positive = code_occupancy(positive_codes, n_symbols)
    on_negative = code_occupancy(negative_codes, n_symbols)
    only_positive = (on_positive & ~on_negative).sum(1).float()
    if not normalised:
        return only_positive
    return only_positive / (on_positive | on_negative).sum(1).float()


def _pair_keys(
    codes: Int[Tensor, "n n_heads"], first_heads: Int[Tensor, " k"], n_symbols: int
) -> Int[Tensor, " keys"]:
    """Unique ids of (h1, h2, code(h1), code(h2)) over examples, for h1 in ``first_heads``.

    An id is ``(h1 * H + h2) * S² + s1 * S + s2`` with S the number of code symbols, so one
    sorted int64 tensor replaces a dense ``[H, H, S, S]`` table.
    """
    n_heads = codes.shape[1]
    symbols = _symbols(codes)
    head_pair = first_heads[:, None] * n_heads + torch.arange(n_heads, device=codes.device)
    code_pair = symbols[:, first_heads, None] * n_symbols + symbols[:, None, :]
    return torch.unique(head_pair * n_symbols**2 + code_pair)


def edge_pair_counts(
    positive_codes: Int[Tensor, "n_pos n_heads_total"],
    negative_codes: Int[Tensor, "n_neg n_heads_total"],
) -> Int[Tensor, "n_heads_total n_heads_total"]:
    """For each ordered head pair (h1 ≠ h2): code pairs seen in some positive and no negative.

    Memory stays at ``O(n_examples * chunk * n_heads)`` keys: first heads are processed in
    chunks sized so that no step builds more than `EDGE_CHUNK_KEYS` keys.
    """
    _check_codes(positive_codes, negative_codes)
    n_heads = positive_codes.shape[1]
    n_symbols = int(max(positive_codes.max(), negative_codes.max())) - NO_CODE + 1
    if (n_heads * n_symbols) ** 2 >= 2**62:
        raise SAEError(f"{n_heads} heads x {n_symbols} codes is too many for int64 pair ids.")
    per_first_head = max(len(positive_codes), len(negative_codes)) * n_heads
    chunk = max(1, EDGE_CHUNK_KEYS // per_first_head)
    counts = torch.zeros(n_heads * n_heads, dtype=torch.long, device=positive_codes.device)
    for first_heads in torch.arange(n_heads, device=positive_codes.device).split(chunk):
        positive_keys = _pair_keys(positive_codes, first_heads, n_symbols)
        negative_keys = _pair_keys(negative_codes, first_heads, n_symbols)
        novel = positive_keys[~torch.isin(positive_keys, negative_keys, assume_unique=True)]
        counts += torch.bincount(novel // n_symbols**2, minlength=n_heads * n_heads)
    counts = counts.reshape(n_heads, n_heads)
    return counts.fill_diagonal_(0)


def edge_head_scores(
    pair_counts: Int[Tensor, "n_heads_total n_heads_total"], top: int | None = None
) -> Float[Tensor, " n_heads_total"]:
    """How often each head appears (as either end) among the ``top`` highest-count ordered pairs.

    The authors' code ranks all ``H²`` ordered pairs ``(h1, h2)`` of the count matrix, self
    pairs included, lists each pair as its two heads and keeps the first ``H² // 2`` heads of
    that list: the top ``top = H² // 4`` ordered pairs, the default here. The counts are
    symmetric, so each unordered pair is two ordered ones with the same count.

    Ties: their unstable sort (``np.argsort``, reversed) orders equal counts in a way that
    depends on numpy and the CPU. Here the pairs tied at the cut share its remaining places
    equally, so each gets a fraction of a place: the mean score over every order of the tied
    pairs, with no preference for low or high head indices (an index tie-break would add a
    depth prior of its own). Without a tie at the cut this is exactly their count.

    Self pairs have count 0 (a head does not pair with itself), so they enter only when fewer
    than ``top`` ordered pairs have a positive count, tied with the other zero-count pairs; like
    the authors' list, a self pair names its head twice.
    """
    n_heads = pair_counts.shape[0]
    if pair_counts.shape != (n_heads, n_heads):
        raise SAEError(f"Pair counts must be a square (n_heads, n_heads) matrix, not {tuple(pair_counts.shape)}.")
    top = n_heads * n_heads // 4 if top is None else top
    if not 0 <= top <= n_heads * n_heads:
        raise SAEError(f"top must be between 0 and {n_heads * n_heads} ordered head pairs, not {top}.")
    counts = pair_counts.flatten().double()
    if top == 0:
        return torch.zeros(n_heads, device=pair_counts.device)
    cut = torch.topk(counts, top).values[-1]
    above, tied = counts > cut, counts == cut
    share = above.double() + tied.double() * (top - above.sum()) / tied.sum()
    share = share.reshape(n_heads, n_heads)
    return (share.sum(1) + share.sum(0)).float()


def edge_scores(
    positive_codes: Int[Tensor, "n_pos n_heads_total"],
    negative_codes: Int[Tensor, "n_neg n_heads_total"],
) -> Float[Tensor, " n_heads_total"]:
    """The edge variant's head score: `edge_head_scores` of `edge_pair_counts`."""
    return edge_head_scores(edge_pair_counts(positive_codes, negative_codes))


# ---------------------------------------------------------------------------------------------
# Evaluation against a ground-truth head set
# ---------------------------------------------------------------------------------------------


def _flat_labels(scores: Tensor, ground_truth: Iterable[tuple[int, int]] | Tensor) -> tuple[np.ndarray, np.ndarray]:
    if scores.ndim != 2:
        raise HeadSetError(
            f"Head scores must be (n_layers, n_heads) to match head sets; got {tuple(scores.shape)}. "
            f"Reshape flat scores with scores.reshape(n_layers, n_heads)."
        )
    if isinstance(ground_truth, Tensor):
        if ground_truth.shape != scores.shape:
            raise HeadSetError(
                f"Ground-truth mask {tuple(ground_truth.shape)} and scores {tuple(scores.shape)} differ."
            )
        labels = ground_truth.bool()
    else:
        labels = heads_to_mask(ground_truth, *scores.shape)
    return labels.flatten().cpu().numpy(), scores.detach().flatten().float().cpu().numpy()


def roc_auc(
    scores: Float[Tensor, "n_layers n_heads"], ground_truth: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"]
) -> float:
    """ROC AUC of head scores against a ground-truth head set (scikit-learn; ties count half)."""
    from sklearn.metrics import roc_auc_score

    return _ranking_metric(roc_auc_score, scores, ground_truth)


def average_precision(
    scores: Float[Tensor, "n_layers n_heads"], ground_truth: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"]
) -> float:
    """Average precision of head scores against a ground-truth head set (scikit-learn)."""
    from sklearn.metrics import average_precision_score

    return _ranking_metric(average_precision_score, scores, ground_truth)


def _ranking_metric(
    metric: Callable[[np.ndarray, np.ndarray], float],
    scores: Float[Tensor, "n_layers n_heads"],
    ground_truth: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"],
) -> float:
    """A scikit-learn ranking metric of the flattened head scores against the ground-truth labels."""
    labels, values = _flat_labels(scores, ground_truth)
    if not np.isfinite(values).all():
        raise SAEError(
            "Head scores hold NaN or inf, so they rank nothing. They come from a collapsed SAE or "
            "a model that overflowed; check the SAE's metrics and the model's weights."
        )
    _check_both_classes(labels)
    return float(metric(labels, values))


def _check_both_classes(labels: np.ndarray) -> None:
    if labels.all() or not labels.any():
        raise HeadSetError(
            "The ground truth holds no head or every head, so ROC AUC / precision are undefined; "
            "give a set with some but not all heads."
        )


def selection_metrics(
    selected: Bool[Tensor, "n_layers n_heads"], ground_truth: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"]
) -> dict[str, float]:
    """Precision, recall, F1, TPR, TNR and the paper's "F1" (harmonic mean of TPR and TNR).

    Empty denominators give 0.0 (no head selected → precision 0).
    """
    labels, chosen = _flat_labels(selected.float(), ground_truth)
    chosen = chosen > 0.5
    true_pos = float((chosen & labels).sum())
    false_pos = float((chosen & ~labels).sum())
    false_neg = float((~chosen & labels).sum())
    true_neg = float((~chosen & ~labels).sum())

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(true_pos, true_pos + false_pos), ratio(true_pos, true_pos + false_neg)
    tpr, tnr = recall, ratio(true_neg, true_neg + false_pos)
    return {
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * precision * recall, precision + recall),
        "tpr": tpr,
        "tnr": tnr,
        "paper_f1": ratio(2 * tpr * tnr, tpr + tnr),
        "n_selected": true_pos + false_pos,
    }


def top_k_mask(scores: Float[Tensor, "n_layers n_heads"], k: int) -> Bool[Tensor, "n_layers n_heads"]:
    """The ``k`` highest-scoring heads (ties broken by flat head index)."""
    if not 0 <= k <= scores.numel():
        raise HeadSetError(f"k must be between 0 and {scores.numel()} heads, not {k}.")
    order = torch.sort(scores.flatten(), descending=True, stable=True).indices[:k]
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[order] = True
    return mask.reshape(scores.shape)


def metrics_at_k(
    scores: Float[Tensor, "n_layers n_heads"], ground_truth: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"], k: int
) -> dict[str, float]:
    """`selection_metrics` of the top ``k`` heads."""
    return selection_metrics(top_k_mask(scores, k), ground_truth)


def metrics_at_threshold(
    scores: Float[Tensor, "n_layers n_heads"], ground_truth: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"], threshold: float
) -> dict[str, float]:
    """`selection_metrics` of the heads scoring at least ``threshold``."""
    return selection_metrics(scores >= threshold, ground_truth)


def sample_sd(values: Iterable[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Sample standard deviation (ddof 1), the sd every saekit report gives; 0 for one value."""
    values = np.asarray(values, dtype=float)
    n = values.size if axis is None else values.shape[axis]
    return np.std(values, axis=axis, ddof=1) if n > 1 else np.zeros_like(values.mean(axis=axis))


def ranked_heads(scores: Float[Tensor, "n_layers n_heads"]) -> list[tuple[int, int]]:
    """Every (layer, head), best score first (ties by flat head index)."""
    n_heads = scores.shape[1]
    order = torch.sort(scores.flatten(), descending=True, stable=True).indices.tolist()
    return [(i // n_heads, i % n_heads) for i in order]


def chance_aucs(
    ground_truth: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"],
    n_layers: int,
    n_heads: int,
    n_rankings: int = 200,
    seed: int = 0,
) -> list[float]:
    """ROC AUCs of ``n_rankings`` random head rankings against ``ground_truth``: the chance
    reference a method's AUC is judged against with `verdict` (seeded, local generator)."""
    generator = torch.Generator().manual_seed(seed)
    return [roc_auc(torch.rand(n_layers, n_heads, generator=generator), ground_truth) for _ in range(n_rankings)]


@dataclass(frozen=True)
class Verdict:
    """A value compared with a reference sample, and the sentence that reports the comparison.

    ``outcome`` is ``"above"`` (more than ``n_sd`` sample sd above the reference mean),
    ``"below"`` (more than ``n_sd`` sd below it) or ``"within"``; ``beats`` is ``outcome == "above"``.
    ``below_floor`` is set when a floor was given and the value lies under it.
    """

    value: float
    reference_mean: float
    reference_sd: float
    n_reference: int
    n_sd: float
    outcome: str
    below_floor: bool
    sentence: str

    @property
    def beats(self) -> bool:
        return self.outcome == "above"


def verdict(
    value: float,
    reference: Iterable[float] | Tensor,
    what: str,
    reference_name: str,
    n_sd: float = 2.0,
    floor: tuple[float, str] | None = None,
) -> Verdict:
    """Say whether ``value`` beats a reference sample (random circuits, chance rankings, seeds).

    One rule for every "beats" in saekit's reports: the value beats the reference only when it
    lies more than ``n_sd`` sample standard deviations above the reference mean; within that band
    it is "no better than" the reference, below it "worse than". ``floor`` = (level, name) adds a
    sentence when the value is under ``level``, e.g. ``(0.0, "an empty circuit")`` for
    faithfulness. The sentence states the numbers, so it can be printed as the result.
    """
    sample = np.asarray(reference.detach().cpu() if isinstance(reference, Tensor) else list(reference), dtype=float)
    if sample.ndim != 1 or sample.size < 2 or not np.isfinite(sample).all() or not np.isfinite(value):
        raise SaekitError(
            f"verdict needs a finite value and at least two finite reference values to measure their spread, got "
            f"{sample.size} reference value(s) for {what}; draw more (more random circuits or seeds)."
        )
    if n_sd < 0:
        raise SaekitError(f"n_sd must be a non-negative number of standard deviations, not {n_sd}.")
    mean, sd = float(sample.mean()), float(sample_sd(sample))
    high, low = mean + n_sd * sd, mean - n_sd * sd
    outcome = "above" if value > high else "below" if value < low else "within"
    spread = f"{reference_name} ({mean:.3f} ± {sd:.3f} sd over {sample.size})"
    sentence = {
        "above": f"{what} ({value:.3f}) beats {spread}: it lies above their mean + {n_sd:g} sd ({high:.3f}).",
        "within": f"{what} ({value:.3f}) is no better than {spread}: it is within {n_sd:g} sd of their mean.",
        "below": f"{what} ({value:.3f}) is worse than {spread}: it lies below their mean − {n_sd:g} sd ({low:.3f}).",
    }[outcome]
    below_floor = floor is not None and value < floor[0]
    if below_floor:
        sentence += f" At {value:.3f} < {floor[0]:g} it is also worse than {floor[1]}."
    return Verdict(value, mean, sd, int(sample.size), n_sd, outcome, below_floor, sentence)
