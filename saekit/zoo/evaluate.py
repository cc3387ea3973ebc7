"""How well a model does the four toy tasks: accuracy on positives, metric on both sides, chance.

Works with anything that maps a token batch to logits: a TransformerLens model or the plain
training module of `saekit.zoo.model`.

- **Accuracy** of a positive prompt: for single-answer tasks (ioi, docstring, induction) the
  top-1 prediction over the whole vocabulary is the answer; for greater-than the probability
  mass on the years above the start year is at least `MASS_THRESHOLD`.
- **Chance metric**: the metric of a model that spreads its prediction uniformly over the
  task's candidate tokens (answers and wrong answers): 0 for the logit differences, and the
  mean of (#later years − #years at or before the start) / 100 for greater-than. A negative
  prompt carries none of the task's information, so its metric should sit near this value; the
  test-bed card reads it against `shuffled_chance_metric` on the negatives' own logits, which
  also holds for docstring's metric (answer against the best wrong answer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saekit.tasks import TASK_NAMES, NO_TOKEN, ContrastiveTask, MetricKind, compute_metric, make_task

#: Greater-than counts a prompt as right when at least this much probability is on later years.
MASS_THRESHOLD = 0.9

#: Task size and seed of the figures in the model card and ``saekit zoo check``.
EVAL_PAIRS = 250
EVAL_SEED = 0

LogitsFn = Callable[[Int[Tensor, "batch seq"]], Float[Tensor, "batch seq vocab"]]


@dataclass(frozen=True)
class TaskEvaluation:
    """Mean accuracy on positives, mean metric on positives and negatives, and the chance metric."""

    pos_accuracy: float
    pos_metric: float
    neg_metric: float
    chance_metric: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@torch.no_grad()
def answer_logits(model: LogitsFn, task: ContrastiveTask, side: str, batch_size: int = 256) -> Float[Tensor, "n_pairs vocab"]:
    """Logits at the answer position of every prompt of one side, in batches."""
    tokens = task.tokens(side)
    chunks = [
        task.subset(slice(start, start + batch_size)).answer_logits(model(tokens[start:start + batch_size]))
        for start in range(0, task.n_pairs, batch_size)
    ]
    return torch.cat(chunks)


def accuracy(task: ContrastiveTask, final_logits: Float[Tensor, "n_pairs vocab"]) -> Float[Tensor, " n_pairs"]:
    """1.0 where a prompt is answered right (see the module docstring), else 0.0."""
    if task.metric is MetricKind.PROB_DIFF:
        probs = final_logits.softmax(-1)
        answer_mask = task.answer_tokens != NO_TOKEN
        mass = (probs.gather(-1, task.answer_tokens.clamp(min=0)) * answer_mask).sum(-1)
        return (mass >= MASS_THRESHOLD).float()
    top = final_logits.argmax(-1, keepdim=True)
    return (top == task.answer_tokens).any(-1).float()


def chance_metric(task: ContrastiveTask) -> Float[Tensor, " n_pairs"]:
    """The metric of a uniform prediction over each prompt's answers and wrong answers."""
    vocab = int(max(task.answer_tokens.max(), task.wrong_tokens.max())) + 1
    uniform = torch.full((task.n_pairs, vocab), -1e9)
    for tokens in (task.answer_tokens, task.wrong_tokens):
        uniform.scatter_(-1, tokens.clamp(min=0), torch.where(tokens == NO_TOKEN, -1e9, 0.0))
    return compute_metric(uniform, task.answer_tokens, task.wrong_tokens, task.metric)


def shuffled_chance_metric(
    task: ContrastiveTask, final_logits: Float[Tensor, "n_pairs vocab"], n_shuffles: int = 256, seed: int = 0
) -> Float[Tensor, " n_pairs"]:
    """The metric these logits give, on average, when each prompt's candidate tokens (answers and
    wrong answers) take the answer and wrong roles at random.

    What a model that holds no information about which candidate is right scores with its own
    logits: 0 for a difference of means (IOI), below 0 for the answer against the *best* of
    several wrong answers (docstring), where a uniform prediction (`chance_metric`) gives 0 though
    any spread among the candidates puts the metric lower. Monte Carlo over ``n_shuffles``
    seeded reassignments.
    """
    candidates = torch.cat([task.answer_tokens, task.wrong_tokens], dim=1)
    valid = candidates != NO_TOKEN
    slots = torch.arange(candidates.shape[1]).expand_as(candidates)
    valid_slots = torch.where(valid, slots, candidates.shape[1]).argsort(dim=1)  # valid slots first, in order
    n_answers = task.answer_tokens.shape[1]
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(task.n_pairs)
    for _ in range(n_shuffles):
        keys = torch.where(valid, torch.rand(candidates.shape, generator=generator), 2.0)
        shuffled = candidates.scatter(1, valid_slots, candidates.gather(1, keys.argsort(dim=1)))
        total += compute_metric(final_logits, shuffled[:, :n_answers], shuffled[:, n_answers:], task.metric)
    return total / n_shuffles


def evaluate_task(model: LogitsFn, task: ContrastiveTask, batch_size: int = 256) -> TaskEvaluation:
    """Accuracy and metrics of ``model`` on ``task``."""
    pos_logits, neg_logits = (answer_logits(model, task, side, batch_size) for side in ("positive", "negative"))
    pos_metric, neg_metric = (
        compute_metric(logits, task.answer_tokens, task.wrong_tokens, task.metric).mean()
        for logits in (pos_logits, neg_logits)
    )
    return TaskEvaluation(
        pos_accuracy=float(accuracy(task, pos_logits).mean()),
        pos_metric=float(pos_metric),
        neg_metric=float(neg_metric),
        chance_metric=float(chance_metric(task).mean()),
    )


def evaluate_toy_model(model: LogitsFn, tokenizer, n_pairs: int = EVAL_PAIRS, seed: int = EVAL_SEED) -> dict[str, TaskEvaluation]:
    """`evaluate_task` on each of the four tasks, ``n_pairs`` pairs generated with ``seed``."""
    return {name: evaluate_task(model, make_task(name, tokenizer, n_pairs, seed)) for name in TASK_NAMES}


def check_toy_model(model_name: str, n_pairs: int = EVAL_PAIRS, seed: int = EVAL_SEED) -> dict[str, Any]:
    """What ``saekit zoo check`` prints: per task, the evaluation and the ground-truth heads, and
    for a model whose ground truth records roles (a test-bed model) the card of
    `saekit.zoo.card.task_card` with its heads in role order, their roles and the acceptance
    bars it meets (`saekit.zoo.card.acceptance_bars`)."""
    from saekit._checks import check_count
    from saekit.models import load_model
    from saekit.tasks.ground_truth import ground_truth_heads, ground_truth_roles
    from saekit.zoo.card import acceptance_bars, task_card

    n_pairs = check_count(n_pairs, "n_pairs (the card's standard errors need at least 2 pairs)", minimum=2)
    model = load_model(model_name)
    tokenizer = model.tokenizer
    scores = evaluate_toy_model(model, tokenizer, n_pairs, seed)
    tasks = {}
    for name, score in scores.items():
        row = {**score.to_dict(), "gt_heads": [list(head) for head in sorted(ground_truth_heads(model_name, name))]}
        roles = ground_truth_roles(model_name, name)
        if roles:
            card = task_card(model, make_task(name, tokenizer, n_pairs, seed), list(roles))
            row["card"] = {**card, "heads": [list(head) for head in roles], "roles": list(roles.values())}
        tasks[name] = row
    cards = {name: row["card"] for name, row in tasks.items() if "card" in row}
    for name, bars in acceptance_bars(cards).items():
        cards[name]["bars"] = bars
    return {"model": model_name, "n_heads": model.cfg.n_layers * model.cfg.n_heads, "n_pairs": n_pairs, "tasks": tasks}
