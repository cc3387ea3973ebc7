"""compute_metric and ContrastiveTask.metric_from_logits against hand-computed values.

The rows have unequal numbers of answers and wrong tokens, so NO_TOKEN pads some slots; token 0
has by far the largest logit, so a padding slot read as token 0 shows in every metric.
"""

from __future__ import annotations

import math

import pytest
import torch

from saekit.tasks.base import NO_TOKEN, ContrastiveTask, MetricKind, compute_metric

LOGITS = torch.tensor([
    [10.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    [10.0, 0.5, -1.0, 2.0, 6.0, 1.0],
])
ANSWERS = torch.tensor([[1, 2], [4, NO_TOKEN]])  # row 0: two answers; row 1: one
WRONGS = torch.tensor([[3, NO_TOKEN, NO_TOKEN], [2, 3, 5]])  # row 0: one wrong; row 1: three


def _probabilities(row):
    total = sum(math.exp(v) for v in LOGITS[row].tolist())
    return [math.exp(v) / total for v in LOGITS[row].tolist()]


def test_logit_diff_is_mean_answer_minus_mean_of_the_real_wrong_tokens():
    """Padding is neither read nor counted in either mean (row 0 has one wrong in three slots)."""
    expected = torch.tensor([(1.0 + 2.0) / 2 - 3.0, 6.0 - (-1.0 + 2.0 + 1.0) / 3])
    torch.testing.assert_close(compute_metric(LOGITS, ANSWERS, WRONGS, MetricKind.LOGIT_DIFF), expected)


def test_logit_diff_max_is_mean_answer_minus_the_largest_real_wrong_logit():
    """The best wrong token, not their mean; padding (token 0, logit 10) never wins the max."""
    expected = torch.tensor([(1.0 + 2.0) / 2 - 3.0, 6.0 - 2.0])
    torch.testing.assert_close(compute_metric(LOGITS, ANSWERS, WRONGS, MetricKind.LOGIT_DIFF_MAX), expected)


def test_prob_diff_sums_probabilities_of_the_real_tokens_only():
    """Σ p(answers) − Σ p(wrong) over the softmax; padding slots add no p(token 0)."""
    p0, p1 = _probabilities(0), _probabilities(1)
    expected = torch.tensor([p0[1] + p0[2] - p0[3], p1[4] - (p1[2] + p1[3] + p1[5])])
    torch.testing.assert_close(compute_metric(LOGITS, ANSWERS, WRONGS, MetricKind.PROB_DIFF), expected)


@pytest.mark.parametrize("kind", list(MetricKind))
def test_metric_from_logits_reads_each_prompts_last_real_position(kind):
    """A task's metric is compute_metric of the logits at lengths - 1 (other positions ignored)."""
    lengths = torch.tensor([2, 3])
    logits = torch.full((2, 3, 6), -50.0)
    logits[0, 0, 1] = logits[1, 0, 4] = 99.0  # would win if the first position were read
    logits[0, 2, 3] = 99.0  # row 0's padding position
    logits[0, 1], logits[1, 2] = LOGITS[0], LOGITS[1]
    tokens = torch.tensor([[5, 1, 0], [5, 2, 3]])
    task = ContrastiveTask(
        name="hand-made", positive_tokens=tokens, negative_tokens=tokens.flip(1), lengths=lengths,
        answer_tokens=ANSWERS, wrong_tokens=WRONGS, metric=kind, template_ids=torch.zeros(2, dtype=torch.long),
        positive_prompts=("a", "b"), negative_prompts=("c", "d"),
    )
    torch.testing.assert_close(task.metric_from_logits(logits), compute_metric(LOGITS, ANSWERS, WRONGS, kind))
