"""Baselines: shapes, exact gradients against finite differences, agreement with patching, and
the trivial baselines against hand-computed values on planted head vectors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from saekit.ablation import capture_head_z, hook_z_name
from saekit.activations import HeadActivations, head_activations
from saekit.baselines import (
    BASELINES,
    TRIVIAL_BASELINES,
    head_norm_scores,
    hisp_scores,
    layer_index_scores,
    mean_difference_scores,
    probe_scores,
)
from saekit.errors import ActivationError, TaskError
from saekit.scoring import roc_auc
from saekit.tasks import make_task, task_from_strings

NAMES = [" Mary", " John", " Tom", " Anna", " Paul", " Kate"]


@pytest.fixture(scope="module")
def tiny_task(gpt2_tokenizer):
    positives, negatives, answers, wrongs = [], [], [], []
    for i in range(6):
        a, b, c = NAMES[i], NAMES[(i + 1) % 6], NAMES[(i + 2) % 6]
        positives.append(f"When{a} and{b} went out,{b} gave it to")
        negatives.append(f"When{a} and{c} went out,{b} gave it to")
        answers.append(a)
        wrongs.append(b)
    return task_from_strings(gpt2_tokenizer, "tiny-ioi", positives, negatives, answers, wrongs)


def _metric_with_head(model, task, layer, head, new_z):
    """Per-prompt metric with head (layer, head)'s z set to ``new_z(z)``."""

    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = new_z(z[:, :, head])
        return z

    with torch.no_grad(), model.hooks(fwd_hooks=[(hook_z_name(layer), hook)]):
        return task.metric_from_logits(model(task.positive_tokens))


@pytest.fixture(scope="module")
def results(tiny_gpt2, tiny_task):
    """Every baseline once (batch_size 4 splits the six prompts into two batches)."""
    return {name: method(tiny_gpt2, tiny_task, batch_size=4) for name, method in BASELINES.items()}


#: Heads checked against finite differences: two per layer keeps the test fast.
CHECKED_HEADS = [(0, 0), (0, 3), (1, 1), (1, 2)]


def test_every_baseline_scores_every_head(results):
    for method, result in results.items():
        assert result.method == method
        assert result.scores.shape == (2, 4) and result.signed.shape == (2, 4)
        assert torch.isfinite(result.scores).all() and (result.scores >= 0).all()
        assert result.scores.max() > 0 and result.seconds > 0


def test_hisp_equals_the_mask_derivative(tiny_gpt2, tiny_task, results):
    """|∂metric/∂ξ_h| by central differences of z_h · (1 ± ε), per prompt, then averaged."""
    eps = 1e-2
    for layer, head in CHECKED_HEADS:
        up = _metric_with_head(tiny_gpt2, tiny_task, layer, head, lambda z: z * (1 + eps))
        down = _metric_with_head(tiny_gpt2, tiny_task, layer, head, lambda z: z * (1 - eps))
        expected = ((up - down) / (2 * eps)).abs().mean()
        assert float(results["hisp"].scores[layer, head]) == pytest.approx(float(expected), rel=2e-2, abs=1e-4)


def test_attribution_is_the_derivative_towards_the_negative(tiny_gpt2, tiny_task, results):
    """d/dα metric(z_pos + α (z_neg − z_pos)) at α = 0, by central differences, per head."""
    result = results["attribution_patching"]
    negative_z = capture_head_z(tiny_gpt2, tiny_task.negative_tokens)
    eps = 1e-2
    for layer, head in CHECKED_HEADS:
        neg = negative_z[layer][:, :, head]
        up = _metric_with_head(tiny_gpt2, tiny_task, layer, head, lambda z: z + eps * (neg - z))
        down = _metric_with_head(tiny_gpt2, tiny_task, layer, head, lambda z: z - eps * (neg - z))
        expected = float(((up - down) / (2 * eps)).mean())
        assert float(result.signed[layer, head]) == pytest.approx(expected, rel=2e-2, abs=1e-4)
        assert float(result.scores[layer, head]) == pytest.approx(abs(expected), rel=2e-2, abs=1e-4)


def test_attribution_approximates_activation_patching(results):
    """A random-init GPT-2 is nearly linear in one head's z: first order ≈ the real patch."""
    attribution = results["attribution_patching"].signed
    patching = results["activation_patching"].signed
    correlation = torch.corrcoef(torch.stack([attribution.flatten(), patching.flatten()]))[0, 1]
    assert correlation > 0.9
    torch.testing.assert_close(attribution, patching, rtol=0.3, atol=0.1 * float(patching.abs().max()))


def test_bad_batch_size_raises(tiny_gpt2, tiny_task):
    with pytest.raises(TaskError, match="batch_size"):
        hisp_scores(tiny_gpt2, tiny_task, batch_size=0)



def test_acdc_scores_use_the_threshold_given(tiny_gpt2, tiny_task):
    """acdc_scores' signed effects are prune_heads' effects at the threshold passed, not 0.02."""
    from saekit.ablation import prune_heads
    from saekit.baselines import acdc_scores

    threshold = 0.35  # prunes some of this task's heads, unlike 0.02 (every |effect| > 0.1)
    result = acdc_scores(tiny_gpt2, tiny_task, batch_size=4, threshold=threshold)
    expected = prune_heads(tiny_gpt2, tiny_task, threshold, batch_size=4).effects
    torch.testing.assert_close(result.signed, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result.scores, expected.abs(), atol=1e-5, rtol=1e-4)
    default = prune_heads(tiny_gpt2, tiny_task, batch_size=4).effects
    assert not torch.allclose(default, expected, atol=1e-3)  # the threshold changes the effects


# ---------------------------------------------------------------------------------------------
# Trivial baselines
# ---------------------------------------------------------------------------------------------


def test_trivial_baselines_are_registered_after_the_expensive_ones():
    assert list(BASELINES) == ["activation_patching", "attribution_patching", "hisp", "acdc", *TRIVIAL_BASELINES]
    assert TRIVIAL_BASELINES == ("head_norm", "mean_difference", "probe", "layer_index")


@pytest.fixture(scope="module")
def planted(tiny_task):
    """Head vectors for the tiny model's 2 x 4 heads and the task's 6 pairs, width 3.

    head 0: positives 3·e0, negatives 4·e1 (norms 3 and 4, separable);
    head 1: each pair's positive equals its negative, a random vector per pair (no class signal);
    head 2: four pairs +e0 / −e0, two pairs 0 / 0 (separable on four pairs of six);
    heads 3-7: zero.
    """
    n_pairs = tiny_task.n_pairs
    assert n_pairs == 6
    positive, negative = torch.zeros(n_pairs, 8, 3), torch.zeros(n_pairs, 8, 3)
    positive[:, 0, 0], negative[:, 0, 1] = 3.0, 4.0
    twins = torch.randn(n_pairs, 3, generator=torch.Generator().manual_seed(0))
    positive[:, 1], negative[:, 1] = twins, twins
    positive[:4, 2, 0], negative[:4, 2, 0] = 1.0, -1.0
    return HeadActivations(positive, negative, "result", "mean", n_layers=2, n_heads=4), twins


def test_head_norm_is_the_mean_norm_over_both_sides(tiny_gpt2, tiny_task, planted):
    activations, twins = planted
    result = head_norm_scores(tiny_gpt2, tiny_task, activations=activations)
    expected = torch.zeros(8)
    expected[0] = (3 + 4) / 2
    expected[1] = twins.norm(dim=1).mean()
    expected[2] = 8 / 12  # eight unit vectors among twelve
    torch.testing.assert_close(result.scores, expected.reshape(2, 4))
    torch.testing.assert_close(result.signed, result.scores)  # a norm has no sign


def test_mean_difference_is_the_distance_between_class_means(tiny_gpt2, tiny_task, planted):
    activations, _ = planted
    result = mean_difference_scores(tiny_gpt2, tiny_task, activations=activations)
    expected = torch.zeros(8)
    expected[0] = 5.0  # ‖3·e0 − 4·e1‖
    expected[2] = 2 * 4 / 6  # μ± = ±(4/6)·e0
    torch.testing.assert_close(result.scores, expected.reshape(2, 4))
    torch.testing.assert_close(result.signed, result.scores)


def test_probe_accuracy_on_planted_heads(tiny_gpt2, tiny_task, planted):
    """Separable: 1. A pair's twins always share a fold, so whatever the probe predicts for one it
    predicts for the other: exactly 0.5 on head 1 and on the zero heads, and (8 + 4/2) / 12 on
    head 2."""
    activations, _ = planted
    result = probe_scores(tiny_gpt2, tiny_task, activations=activations)
    expected = torch.full((8,), 0.5)
    expected[0] = 1.0
    expected[2] = 10 / 12
    torch.testing.assert_close(result.scores, expected.reshape(2, 4))
    torch.testing.assert_close(result.signed, result.scores - 0.5)
    again = probe_scores(tiny_gpt2, tiny_task, activations=activations, folds=3, seed=1)
    torch.testing.assert_close(again.scores, result.scores)  # exact values hold for any split


def test_layer_index_ranks_later_heads_higher(tiny_gpt2, tiny_task, toy_4l):
    result = layer_index_scores(tiny_gpt2, tiny_task)
    assert result.scores.tolist() == [[0.0] * 4, [1.0] * 4]
    torch.testing.assert_close(result.signed, result.scores)
    toy = layer_index_scores(toy_4l, tiny_task)  # no forward pass: any task will do
    assert toy.scores.tolist() == [[float(layer)] * 8 for layer in range(4)]
    # Circuit {1.0, 1.3}: each beats the 4 layer-0 heads and ties the other 2 layer-1 heads.
    assert roc_auc(result.scores, {(1, 0), (1, 3)}) == pytest.approx((2 * (4 + 2 * 0.5)) / (2 * 6))


def test_the_default_harvest_is_the_papers(tiny_gpt2, tiny_task):
    """Without activations, the baselines harvest each head's z · W_O averaged over positions."""
    vectors = head_activations(tiny_gpt2, tiny_task, "result", "mean", progress=False)
    for method in (head_norm_scores, mean_difference_scores, probe_scores):
        own = method(tiny_gpt2, tiny_task, batch_size=4)
        given = method(tiny_gpt2, tiny_task, activations=vectors)
        torch.testing.assert_close(own.scores, given.scores)
    expected = (vectors.positive.mean(0) - vectors.negative.mean(0)).norm(dim=-1).reshape(2, 4)
    torch.testing.assert_close(mean_difference_scores(tiny_gpt2, tiny_task).scores, expected)


def test_activations_from_another_model_or_task_are_refused(tiny_gpt2, tiny_task, planted):
    activations, _ = planted
    shorter = HeadActivations(activations.positive[:5], activations.negative[:5], "result", "mean", 2, 4)
    other_model = HeadActivations(activations.positive, activations.negative, "result", "mean", 4, 2)
    for wrong in (shorter, other_model):
        for method in (head_norm_scores, mean_difference_scores, probe_scores):
            with pytest.raises(ActivationError, match="head_activations"):
                method(tiny_gpt2, tiny_task, activations=wrong)
    with pytest.raises(TaskError, match="folds"):
        probe_scores(tiny_gpt2, tiny_task, activations=activations, folds=1)


def test_trivial_baselines_run_on_the_toy_model(toy_4l):
    task = make_task("greater-than", toy_4l, n_pairs=12)
    for name in TRIVIAL_BASELINES:
        result = BASELINES[name](toy_4l, task)
        assert result.method == name and result.scores.shape == (4, 8)
        assert torch.isfinite(result.scores).all() and result.scores.max() > 0


def test_compare_reports_the_trivial_baselines(tiny_gpt2, tiny_gpt2_dir, capsys, monkeypatch):
    import saekit.models
    import saekit.tasks.ground_truth as ground_truth
    from saekit.cli import main

    monkeypatch.setattr(saekit.models, "load_model", lambda name, device: tiny_gpt2)
    monkeypatch.setattr(ground_truth, "ground_truth_heads", lambda model, task: frozenset({(1, 0), (1, 3)}))
    assert main(["compare", "--model", str(tiny_gpt2_dir), "--task", "ioi", "--n-pairs", "6", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for name in TRIVIAL_BASELINES:
        assert 0.0 <= report[name]["auc"] <= 1.0 and math.isfinite(report[name]["seconds"])
    assert report["layer_index"]["auc"] == pytest.approx(5 / 6)  # as in the layer-index test
    norms = head_norm_scores(tiny_gpt2, make_task("ioi", tiny_gpt2, n_pairs=6)).scores
    assert report["head_norm"]["auc"] == pytest.approx(roc_auc(norms, {(1, 0), (1, 3)}))
