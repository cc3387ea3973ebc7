"""Contrastive tasks: the prompts a circuit is found on, for toy and pretrained tokenizers.

``make_task("ioi", model)`` builds a task for the model's tokenizer: the shipped toy models'
word-level vocabulary gets the toy generators (`saekit.tasks.toy`), any BPE tokenizer
(GPT-2, attn-only-4l, Pythia, ...) the GPT-2-scale generators (`saekit.tasks.bpe`).
[`task_from_strings`][saekit.tasks.task_from_strings] builds a task of your own from plain lists.
"""

from __future__ import annotations

from typing import Any

from saekit._checks import check_count, tokenizer_of
from saekit.errors import TaskError
from saekit.tasks.base import (
    NO_TOKEN,
    ContrastiveTask,
    MetricKind,
    compute_metric,
    task_from_strings,
    tokenizer_setting,
)

TASK_NAMES: tuple[str, ...] = ("ioi", "greater-than", "docstring", "induction")

#: Key in a toy tokenizer's ``tokenizer_config.json`` naming its vocabulary family.
TOY_TOKENIZER_MARKER = "saekit_vocabulary"


def is_toy_tokenizer(tokenizer: Any) -> bool:
    """True for the word-level tokenizers of saekit's shipped toy models."""
    return tokenizer_setting(tokenizer, TOY_TOKENIZER_MARKER) == "toy"


def make_task(name: str, model_or_tokenizer: Any, n_pairs: int = 250, seed: int = 0) -> ContrastiveTask:
    """``n_pairs`` positive/negative pairs of task ``name`` for a model (or its tokenizer).

    Generation is seeded by ``seed`` alone and never touches the global random state.
    """
    tokenizer = tokenizer_of(model_or_tokenizer, "make_task")
    if name not in TASK_NAMES:
        raise TaskError(
            f"Unknown task {name!r}. Built-in tasks: {', '.join(TASK_NAMES)}; for your own, "
            f"use saekit.tasks.task_from_strings."
        )
    n_pairs = check_count(n_pairs, "n_pairs", TaskError)
    seed = check_count(seed, "seed", TaskError, minimum=0)
    if is_toy_tokenizer(tokenizer):
        from saekit.tasks.toy import GENERATORS
    else:
        from saekit.tasks.bpe import GENERATORS
    return GENERATORS[name](tokenizer, n_pairs=n_pairs, seed=seed)


__all__ = [
    "NO_TOKEN",
    "TASK_NAMES",
    "ContrastiveTask",
    "MetricKind",
    "compute_metric",
    "is_toy_tokenizer",
    "make_task",
    "task_from_strings",
]
