"""Baselines: shapes, exact gradients against finite differences, agreement with patching."""

from __future__ import annotations

import pytest
import torch

from saekit.ablation import capture_head_z, hook_z_name
from saekit.baselines import BASELINES, hisp_scores
from saekit.errors import TaskError
from saekit.tasks import task_from_strings

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
