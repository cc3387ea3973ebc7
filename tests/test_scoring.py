"""Head scores against brute-force set arithmetic, and the evaluation metrics."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from torch.utils._python_dispatch import TorchDispatchMode

from saekit.codes import NO_CODE
from saekit.errors import HeadSetError, SaekitError, SAEError
from saekit.scoring import (
    average_precision,
    edge_head_scores,
    edge_pair_counts,
    edge_scores,
    metrics_at_k,
    metrics_at_threshold,
    node_scores,
    ranked_heads,
    roc_auc,
    sample_sd,
    selection_metrics,
    top_k_mask,
    verdict,
)


@st.composite
def code_pairs(draw, max_heads: int = 6, max_examples: int = 7, max_code: int = 5):
    """Random positive and negative code tables over the same heads, NO_CODE included."""
    n_heads = draw(st.integers(1, max_heads))
    codes = st.integers(NO_CODE, max_code)
    n_pos, n_neg = draw(st.integers(1, max_examples)), draw(st.integers(1, max_examples))
    positive = draw(st.lists(st.lists(codes, min_size=n_heads, max_size=n_heads), min_size=n_pos, max_size=n_pos))
    negative = draw(st.lists(st.lists(codes, min_size=n_heads, max_size=n_heads), min_size=n_neg, max_size=n_neg))
    return torch.tensor(positive), torch.tensor(negative)


def reference_node_scores(positive, negative, normalised):
    scores = []
    for head in range(positive.shape[1]):
        on_positive, on_negative = set(positive[:, head].tolist()), set(negative[:, head].tolist())
        only = len(on_positive - on_negative)
        scores.append(only / len(on_positive | on_negative) if normalised else float(only))
    return torch.tensor(scores)


def reference_pair_counts(positive, negative):
    n_heads = positive.shape[1]
    seen = {side: defaultdict(set) for side in ("pos", "neg")}
    for side, codes in (("pos", positive), ("neg", negative)):
        for row in codes.tolist():
            for h1 in range(n_heads):
                for h2 in range(n_heads):
                    seen[side][h1, h2].add((row[h1], row[h2]))
    counts = torch.zeros(n_heads, n_heads, dtype=torch.long)
    for h1 in range(n_heads):
        for h2 in range(n_heads):
            if h1 != h2:
                counts[h1, h2] = len(seen["pos"][h1, h2] - seen["neg"][h1, h2])
    return counts


def authors_edge_scores(positive, negative, tie_order):
    """The authors' edge score, literally: rank every ordered head pair (self pairs included) by
    its count of positive-only code pairs, list each pair as its two heads, and count each head
    among the first n_heads² // 2 entries of that list. ``tie_order`` orders equal counts."""
    counts = reference_pair_counts(positive, negative)
    n_heads = counts.shape[0]
    entries = [(a, b) for a in range(n_heads) for b in range(n_heads)]
    entries = [entries[i] for i in tie_order]
    ranked = sorted(entries, key=lambda pair: -int(counts[pair]))
    listed = [head for pair in ranked for head in pair]
    appearances = [0.0] * n_heads
    for head in listed[: n_heads**2 // 2]:
        appearances[head] += 1
    return torch.tensor(appearances)


def no_tie_at_the_cut(counts, top):
    """True when the top ``top`` ordered pairs are the same in every order of equal counts (up
    to swapping a pair with its mirror, which names the same two heads)."""
    values = counts.flatten()
    cut = values.sort(descending=True).values[top - 1]
    tied = (counts == cut).nonzero().tolist()
    straddles = int((values > cut).sum()) + len(tied) > top
    return not straddles or (len(tied) == 2 and tied[0] == tied[1][::-1])


@settings(max_examples=150, deadline=None)
@given(code_pairs(), st.booleans())
def test_node_scores_match_set_arithmetic(codes, normalised):
    positive, negative = codes
    expected = reference_node_scores(positive, negative, normalised)
    torch.testing.assert_close(node_scores(positive, negative, normalised=normalised), expected)


@settings(max_examples=150, deadline=None)
@given(code_pairs())
def test_edge_pair_counts_match_set_arithmetic(codes):
    positive, negative = codes
    assert torch.equal(edge_pair_counts(*codes), reference_pair_counts(positive, negative))


@settings(max_examples=100, deadline=None)
@given(code_pairs(max_examples=12), st.randoms(use_true_random=False))
def test_edge_scores_equal_the_authors_definition_without_ties(codes, random):
    """On codes whose ranking has no tie at the cut, saekit's edge score is the authors' count,
    whatever order their sort gives equal counts."""
    positive, negative = codes
    n_heads = positive.shape[1]
    counts = reference_pair_counts(positive, negative)
    assume(n_heads >= 2 and no_tie_at_the_cut(counts, n_heads**2 // 4))
    tie_order = random.sample(range(n_heads**2), n_heads**2)
    torch.testing.assert_close(edge_scores(positive, negative), authors_edge_scores(positive, negative, tie_order))


def test_edge_scores_by_hand():
    """Pair counts (0,1): 1, (0,2): 1, (1,2): 2; the top 9 // 4 = 2 ordered pairs are (1,2), (2,1)."""
    positive = torch.tensor([[1, 1, 0], [1, 2, 0], [1, 1, 1]])
    negative = torch.tensor([[1, 1, 0]])
    assert edge_pair_counts(positive, negative).tolist() == [[0, 1, 1], [1, 0, 2], [1, 2, 0]]
    assert edge_scores(positive, negative).tolist() == [0.0, 2.0, 2.0]


def _symmetric(n_heads, counts):
    matrix = torch.zeros(n_heads, n_heads, dtype=torch.long)
    for (a, b), count in counts.items():
        matrix[a, b] = matrix[b, a] = count
    return matrix


def test_edge_head_scores_keep_the_top_quarter_of_ordered_pairs():
    counts = _symmetric(4, {(0, 1): 5, (0, 2): 4, (1, 2): 3, (0, 3): 2, (1, 3): 1})
    assert edge_head_scores(counts).tolist() == [4.0, 2.0, 2.0, 0.0]  # pairs {0,1} and {0,2}, both orders
    assert edge_head_scores(counts, top=2).tolist() == [2.0, 2.0, 0.0, 0.0]
    assert edge_head_scores(counts, top=0).tolist() == [0.0] * 4


def test_pairs_tied_at_the_cut_share_its_places():
    """{0,1} is in; {0,2} and {2,3} tie for the last two places: each ordered pair gets half of
    one (a tie-break by head index would give {0,2} both: [4, 2, 2, 0])."""
    counts = _symmetric(4, {(0, 1): 5, (0, 2): 4, (2, 3): 4})
    assert edge_head_scores(counts).tolist() == [3.0, 2.0, 2.0, 1.0]


def test_self_pairs_tie_with_the_other_zero_count_pairs():
    """One pair has a count: the other 2 of the 4 places go to the 14 zero-count ordered pairs,
    the 4 self pairs among them, 1/7 each; a self pair names its head twice."""
    scores = edge_head_scores(_symmetric(4, {(0, 1): 1}))
    torch.testing.assert_close(scores, torch.tensor([2 + 6 / 7, 2 + 6 / 7, 8 / 7, 8 / 7]))
    assert float(scores.sum()) == pytest.approx(2 * 4)


def test_edge_head_scores_refuse_a_bad_top_or_shape():
    with pytest.raises(SAEError, match="top"):
        edge_head_scores(torch.zeros(3, 3), top=10)
    with pytest.raises(SAEError, match="square"):
        edge_head_scores(torch.zeros(3, 4))


@settings(max_examples=30, deadline=None)
@given(code_pairs(max_heads=5, max_examples=6))
def test_edge_chunking_changes_nothing(codes):
    import saekit.scoring as scoring

    whole = edge_pair_counts(*codes)
    saved = scoring.EDGE_CHUNK_KEYS
    scoring.EDGE_CHUNK_KEYS = 1  # one first head per chunk
    try:
        assert torch.equal(edge_pair_counts(*codes), whole)
    finally:
        scoring.EDGE_CHUNK_KEYS = saved


def test_a_head_that_changes_code_scores_and_a_constant_one_does_not():
    positive = torch.tensor([[3, 5], [4, 5]])
    negative = torch.tensor([[7, 5], [7, 5]])
    assert node_scores(positive, negative).tolist() == [2.0, 0.0]
    torch.testing.assert_close(node_scores(positive, negative, normalised=True), torch.tensor([2 / 3, 0.0]))


def test_no_code_is_a_code_value_of_its_own():
    positive = torch.tensor([[NO_CODE], [2]])
    negative = torch.tensor([[2]])
    assert node_scores(positive, negative).tolist() == [1.0]


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any torch operation creates."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel() * tensor.element_size())
        return out


def test_edge_scores_at_gpt2_scale_stay_small():
    """144 heads x 200 latents x 250 + 250 examples: a dense [H, H, n, n] table would be 6.6 GB."""
    generator = torch.Generator().manual_seed(0)
    positive = torch.randint(NO_CODE, 200, (250, 144), generator=generator)
    negative = torch.randint(NO_CODE, 200, (250, 144), generator=generator)
    with _LargestTensor() as watch:
        scores = edge_scores(positive, negative)
    assert scores.shape == (144,)
    assert scores.sum() == 2 * (144 * 144 // 4)  # each of the top quarter of ordered pairs names two heads
    assert watch.largest < 256 * 2**20  # well under 2 GB; the dense table would be 6.6 GB


def test_malformed_codes_are_refused():
    with pytest.raises(SAEError, match="same model"):
        node_scores(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(SAEError, match="at least one"):
        node_scores(torch.zeros(0, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(SAEError, match="NO_CODE"):
        edge_scores(torch.full((2, 3), -2), torch.zeros(2, 3, dtype=torch.long))


# ----- evaluation -----------------------------------------------------------------------------

SCORES = torch.tensor([[0.9, 0.1, 0.5], [0.8, 0.3, 0.2]])
TRUTH = {(0, 0), (1, 0), (0, 1)}


def test_roc_auc_and_average_precision_match_scikit_learn():
    labels = [1, 1, 0, 1, 0, 0]
    assert roc_auc(SCORES, TRUTH) == pytest.approx(roc_auc_score(labels, SCORES.flatten().numpy()))
    assert roc_auc(SCORES, TRUTH) == pytest.approx(6 / 9)  # 6 of 9 (in, out) pairs ordered right
    assert average_precision(SCORES, TRUTH) == pytest.approx((1 + 1 + 3 / 6) / 3)


def test_roc_auc_of_a_perfect_ranking_is_one():
    assert roc_auc(SCORES, {(0, 0), (1, 0)}) == 1.0


def test_selection_metrics_by_hand():
    metrics = metrics_at_k(SCORES, TRUTH, k=2)  # picks 0.0 and 1.0: both right
    assert metrics["precision"] == 1.0 and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(0.8)
    assert metrics["tnr"] == 1.0 and metrics["paper_f1"] == pytest.approx(0.8)
    at_threshold = metrics_at_threshold(SCORES, TRUTH, 0.3)  # 0.9 0.5 0.8 0.3
    assert at_threshold["precision"] == 0.5 and at_threshold["recall"] == pytest.approx(2 / 3)
    assert at_threshold["tnr"] == pytest.approx(1 / 3)
    none = selection_metrics(torch.zeros(2, 3, dtype=torch.bool), TRUTH)
    assert none["precision"] == 0.0 and none["f1"] == 0.0 and none["tnr"] == 1.0


def test_ranking_and_top_k_break_ties_by_head_index():
    tied = torch.tensor([[1.0, 2.0], [2.0, 1.0]])
    assert ranked_heads(tied) == [(0, 1), (1, 0), (0, 0), (1, 1)]
    assert top_k_mask(tied, 1).tolist() == [[False, True], [False, False]]


def test_head_sets_that_do_not_fit_are_refused():
    with pytest.raises(HeadSetError, match="outside"):
        roc_auc(SCORES, {(5, 0)})
    with pytest.raises(HeadSetError, match="no head or every head"):
        roc_auc(SCORES, set())
    with pytest.raises(HeadSetError, match="n_layers, n_heads"):
        roc_auc(SCORES.flatten(), TRUTH)
    with pytest.raises(HeadSetError, match="between 0"):
        top_k_mask(SCORES, 7)


def test_sample_sd_is_the_ddof_1_sd_and_0_for_one_value():
    assert sample_sd([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert sample_sd([4.0]) == 0.0
    np.testing.assert_allclose(sample_sd(np.array([[1.0, 5.0], [3.0, 5.0]]), axis=0), [np.sqrt(2), 0.0])
    np.testing.assert_array_equal(sample_sd(np.array([[1.0, 5.0]]), axis=0), [0.0, 0.0])


def _truth_mask():
    mask = torch.zeros(2, 3, dtype=torch.bool)
    for layer, head in TRUTH:
        mask[layer, head] = True
    return mask


def test_roc_auc_of_a_mask_equals_that_of_the_head_set():
    """A boolean-mask ground truth labels its True heads as the circuit, like the set does."""
    assert roc_auc(SCORES, _truth_mask()) == pytest.approx(roc_auc(SCORES, TRUTH))
    assert roc_auc(SCORES, _truth_mask()) == pytest.approx(6 / 9)
    assert average_precision(SCORES, _truth_mask()) == pytest.approx(average_precision(SCORES, TRUTH))


def test_metrics_at_threshold_of_a_mask_equal_those_of_the_head_set():
    """Same metrics from a mask; n_selected counts every selected head, right or wrong."""
    from_mask = metrics_at_threshold(SCORES, _truth_mask(), 0.3)
    assert from_mask == pytest.approx(metrics_at_threshold(SCORES, TRUTH, 0.3))
    assert from_mask["n_selected"] == 4.0  # 0.9 0.5 0.8 0.3: two in the truth, two not
    assert from_mask["precision"] == 0.5


# One rule for "beats": more than n_sd sample sd above the reference mean.
REFERENCE = [1.0, 2.0, 3.0]  # mean 2, sample sd 1: beats above 4, worse below 0


@pytest.mark.parametrize(("value", "outcome", "phrase"), [
    (4.5, "above", "beats"), (3.9, "within", "is no better than"), (0.5, "within", "is no better than"),
    (-0.1, "below", "is worse than"),
])
def test_verdict_says_beats_only_beyond_two_sd(value, outcome, phrase):
    result = verdict(value, REFERENCE, "the circuit", "random circuits")
    assert result.outcome == outcome and result.beats == (outcome == "above")
    assert result.sentence.startswith(f"the circuit ({value:.3f}) {phrase} random circuits (2.000 ± 1.000 sd over 3)")
    assert (result.reference_mean, result.reference_sd, result.n_reference) == (2.0, 1.0, 3)


def test_verdict_boundary_is_not_a_win():
    assert not verdict(4.0, REFERENCE, "x", "y").beats  # exactly mean + 2 sd
    assert verdict(4.0 + 1e-9, REFERENCE, "x", "y").beats
    assert verdict(0.0, REFERENCE, "x", "y").outcome == "within"  # exactly mean − 2 sd
    assert verdict(2.6, REFERENCE, "x", "y", n_sd=0.5).beats and not verdict(2.5, REFERENCE, "x", "y", n_sd=0.5).beats


def test_verdict_takes_tensors_and_reports_a_floor():
    result = verdict(-0.06, torch.tensor([-0.2, -0.1, -0.03]), "SAE circuit", "random circuits",
                     floor=(0.0, "an empty circuit"))
    assert result.outcome == "within" and result.below_floor
    assert result.sentence.endswith("it is also worse than an empty circuit.")
    assert not verdict(0.5, REFERENCE, "x", "y", floor=(0.0, "an empty circuit")).below_floor


def test_verdict_refuses_a_reference_without_spread():
    with pytest.raises(SaekitError, match="at least two"):
        verdict(1.0, [0.5], "x", "y")
    with pytest.raises(SaekitError, match="finite"):
        verdict(float("nan"), REFERENCE, "x", "y")
