"""The contrastive task: paired prompts the model can and cannot complete, tokenized.

Every stage downstream reads a [`ContrastiveTask`][saekit.tasks.base.ContrastiveTask]. Prompts are BOS-prefixed and
right-padded; ``lengths`` counts the real tokens of each pair (a positive and its negative
always have the same length). With right padding a causal model never attends to padding, so
a reduction over positions only has to stop at ``lengths``, and the answer is read at
``lengths - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saekit._checks import tokenizer_of
from saekit.errors import TaskError

NO_TOKEN = -1
"""Fills the unused slots of ``answer_tokens`` / ``wrong_tokens`` rows of unequal length."""


class MetricKind(str, Enum):
    """How a task turns the logits at the answer position into one number per prompt."""

    LOGIT_DIFF = "logit_diff"
    """mean logit of the answers − mean logit of the wrong tokens (IOI: IO − S)."""
    LOGIT_DIFF_MAX = "logit_diff_max"
    """mean answer logit − max wrong logit (docstring: correct − best wrong argument)."""
    PROB_DIFF = "prob_diff"
    """Σ p(answers) − Σ p(wrong) (greater-than: years above − years at or below the start)."""


@dataclass(frozen=True)
class ContrastiveTask:
    """N positive prompts, their N paired negatives, and what counts as a right answer.

    ``answer_tokens[i]`` and ``wrong_tokens[i]`` are the right and wrong next tokens of
    positive prompt i; the metric of a negative is measured against the same tokens, so a
    negative shows what the model does when the task's information is removed.
    """

    name: str
    positive_tokens: Int[Tensor, "n_pairs seq"]
    negative_tokens: Int[Tensor, "n_pairs seq"]
    lengths: Int[Tensor, " n_pairs"]
    answer_tokens: Int[Tensor, "n_pairs n_answers"]
    wrong_tokens: Int[Tensor, "n_pairs n_wrong"]
    metric: MetricKind
    template_ids: Int[Tensor, " n_pairs"]
    positive_prompts: tuple[str, ...] = field(repr=False)
    negative_prompts: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        n = len(self.lengths)
        if n == 0:
            raise TaskError(f"Task {self.name!r} has no prompts; generate at least one pair.")
        for label, tensor in [
            ("positive_tokens", self.positive_tokens),
            ("negative_tokens", self.negative_tokens),
            ("answer_tokens", self.answer_tokens),
            ("wrong_tokens", self.wrong_tokens),
            ("template_ids", self.template_ids),
        ]:
            if tensor.shape[0] != n:
                raise TaskError(
                    f"Task {self.name!r}: {label} has {tensor.shape[0]} rows but there are {n} "
                    f"pairs; every per-pair field needs one row per pair."
                )
        if self.positive_tokens.shape != self.negative_tokens.shape:
            raise TaskError(
                f"Task {self.name!r}: positive and negative token tensors differ in shape "
                f"({tuple(self.positive_tokens.shape)} vs {tuple(self.negative_tokens.shape)})."
            )

    @property
    def n_pairs(self) -> int:
        return len(self.lengths)

    def tokens(self, side: str) -> Int[Tensor, "n_pairs seq"]:
        """``positive_tokens`` for side "positive", ``negative_tokens`` for "negative"."""
        if side not in ("positive", "negative"):
            raise TaskError(f"side must be 'positive' or 'negative', not {side!r}.")
        return self.positive_tokens if side == "positive" else self.negative_tokens

    def subset(self, index: Int[Tensor, " k"] | slice) -> ContrastiveTask:
        """The pairs at ``index``, as a task of their own."""
        picked = torch.arange(self.n_pairs)[index]
        seq = int(self.lengths[picked].max())
        return ContrastiveTask(
            name=self.name,
            positive_tokens=self.positive_tokens[picked, :seq],
            negative_tokens=self.negative_tokens[picked, :seq],
            lengths=self.lengths[picked],
            answer_tokens=self.answer_tokens[picked],
            wrong_tokens=self.wrong_tokens[picked],
            metric=self.metric,
            template_ids=self.template_ids[picked],
            positive_prompts=tuple(self.positive_prompts[i] for i in picked.tolist()),
            negative_prompts=tuple(self.negative_prompts[i] for i in picked.tolist()),
        )

    def position_mask(self) -> Bool[Tensor, "n_pairs seq"]:
        """True at the real (non-padding) positions of each prompt."""
        return torch.arange(self.positive_tokens.shape[1]) < self.lengths[:, None]

    def answer_logits(self, logits: Float[Tensor, "n_pairs seq vocab"]) -> Float[Tensor, "n_pairs vocab"]:
        """The logits at each prompt's last real position, where the answer is predicted."""
        return logits[torch.arange(len(self.lengths)), self.lengths - 1]

    def metric_from_logits(self, logits: Float[Tensor, "n_pairs seq vocab"]) -> Float[Tensor, " n_pairs"]:
        """The task metric of each prompt, from a forward pass over its tokens."""
        return compute_metric(
            self.answer_logits(logits), self.answer_tokens, self.wrong_tokens, self.metric
        )


def compute_metric(
    final_logits: Float[Tensor, "n vocab"],
    answer_tokens: Int[Tensor, "n n_answers"],
    wrong_tokens: Int[Tensor, "n n_wrong"],
    kind: MetricKind,
) -> Float[Tensor, " n"]:
    """The metric of [`MetricKind`][saekit.tasks.base.MetricKind] ``kind`` per row; ``NO_TOKEN`` slots are ignored."""
    values = final_logits.log_softmax(-1).exp() if kind is MetricKind.PROB_DIFF else final_logits
    answer_mask, wrong_mask = answer_tokens != NO_TOKEN, wrong_tokens != NO_TOKEN
    answers = values.gather(-1, answer_tokens.clamp(min=0))
    wrongs = values.gather(-1, wrong_tokens.clamp(min=0))
    if kind is MetricKind.PROB_DIFF:
        return (answers * answer_mask).sum(-1) - (wrongs * wrong_mask).sum(-1)
    answer_mean = (answers * answer_mask).sum(-1) / answer_mask.sum(-1)
    if kind is MetricKind.LOGIT_DIFF_MAX:
        return answer_mean - wrongs.masked_fill(~wrong_mask, float("-inf")).max(-1).values
    return answer_mean - (wrongs * wrong_mask).sum(-1) / wrong_mask.sum(-1)


def tokenizer_setting(tokenizer: Any, key: str, default: Any = None) -> Any:
    """A setting a saekit toy tokenizer records in its ``tokenizer_config.json`` (read back as
    ``init_kwargs``), or ``default`` for a tokenizer without it."""
    return getattr(tokenizer, "init_kwargs", {}).get(key, default)


def pad_rows(rows: Sequence[Sequence[int]], fill: int) -> Int[Tensor, "n width"]:
    """Token rows of different lengths as one right-padded tensor, ``fill`` after each row's end."""
    width = max(len(row) for row in rows)
    return torch.tensor([list(row) + [fill] * (width - len(row)) for row in rows], dtype=torch.long)


def _as_list(answer: str | Sequence[str]) -> list[str]:
    return [answer] if isinstance(answer, str) else list(answer)


def _check_texts(name: str, role: str, texts: Any) -> None:
    """Refuse ``texts`` unless it is a list of strings (answers: or of lists of strings)."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TaskError(
            f"Task {name!r}: {role} must be a list with one entry per pair, got "
            f"{type(texts).__name__}{' (a single string)' if isinstance(texts, str) else ''}."
        )
    answer_lists = role in ("answers", "wrong_answers")
    for i, text in enumerate(texts):
        inner = _as_list(text) if answer_lists and isinstance(text, (list, tuple)) else [text]
        if not all(isinstance(item, str) for item in inner):
            raise TaskError(
                f"Task {name!r}: {role}[{i}] is {text!r} ({type(text).__name__}); prompts and "
                f"answers are strings{' (or, per pair, a list of strings)' if answer_lists else ''}."
            )


def task_from_strings(
    tokenizer,
    name: str,
    positives: Sequence[str],
    negatives: Sequence[str],
    answers: Sequence[str | Sequence[str]],
    wrong_answers: Sequence[str | Sequence[str]],
    metric: MetricKind | str = MetricKind.LOGIT_DIFF,
    template_ids: Sequence[int] | None = None,
) -> ContrastiveTask:
    """Build a task from plain strings, checking that they fit together.

    Each positive is paired with the negative at the same index and must tokenize to the same
    length; each answer and wrong answer must be a single token (with a BPE tokenizer, include
    the leading space: ``" Mary"``). A BOS token is prepended to every prompt.
    """
    tokenizer = tokenizer_of(tokenizer, "task_from_strings")
    for role, texts in [("positives", positives), ("negatives", negatives), ("answers", answers),
                        ("wrong_answers", wrong_answers)]:
        _check_texts(name, role, texts)
    try:
        metric = MetricKind(metric)
    except ValueError:
        raise TaskError(
            f"Unknown metric {metric!r}; use one of {[m.value for m in MetricKind]}."
        ) from None
    counts = {len(positives), len(negatives), len(answers), len(wrong_answers)}
    if len(positives) == 0:
        raise TaskError(f"Task {name!r} is empty: give at least one positive/negative pair.")
    if len(counts) != 1:
        raise TaskError(
            f"Task {name!r}: {len(positives)} positives, {len(negatives)} negatives, "
            f"{len(answers)} answers and {len(wrong_answers)} wrong answers; give one of each "
            f"per pair."
        )
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else bos
    if bos is None:
        raise TaskError("The tokenizer has neither a BOS nor an EOS token to start prompts with.")

    # A vocabulary tokenizer maps words it lacks to its unknown token; GPT-2's BPE never does,
    # and names <|endoftext|> (its BOS) as unk_token, so that id is not a sign of a lost word.
    unknown = tokenizer.unk_token_id if tokenizer.unk_token_id not in (bos, tokenizer.eos_token_id) else None

    def encode(text: str) -> list[int]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if unknown is not None and unknown in ids:
            lost = [word for word in text.split() if unknown in tokenizer.encode(word, add_special_tokens=False)]
            raise TaskError(
                f"Task {name!r}: the tokenizer does not know {', '.join(map(repr, lost)) or repr(text)} "
                f"(it becomes {tokenizer.unk_token!r}), so different words would look the same to "
                f"the model. Use words from its vocabulary (mind punctuation glued to a word)."
            )
        return ids

    def single_token(word: str, role: str) -> int:
        ids = encode(word)
        if len(ids) != 1:
            raise TaskError(
                f"Task {name!r}: {role} {word!r} is {len(ids)} tokens "
                f"({tokenizer.convert_ids_to_tokens(ids)}); answers must be single tokens. With "
                f"a BPE tokenizer, check the leading space (' Mary', not 'Mary') or pick another word."
            )
        return ids[0]

    pos_ids, neg_ids = [], []
    for i, (pos, neg) in enumerate(zip(positives, negatives)):
        p, q = [bos, *encode(pos)], [bos, *encode(neg)]
        if len(p) != len(q):
            raise TaskError(
                f"Task {name!r}, pair {i}: the positive is {len(p)} tokens and the negative "
                f"{len(q)}; a pair must have equal token lengths so positions line up. "
                f"Positive: {pos!r}; negative: {neg!r}."
            )
        if p == q:
            raise TaskError(
                f"Task {name!r}, pair {i}: the negative is the same tokens as the positive, so the "
                f"pair contrasts nothing. A negative must change what the task depends on. "
                f"Prompt: {pos!r}."
            )
        pos_ids.append(p)
        neg_ids.append(q)
    answer_ids = [[single_token(a, "answer") for a in _as_list(ans)] for ans in answers]
    wrong_ids = [[single_token(w, "wrong answer") for w in _as_list(wr)] for wr in wrong_answers]
    if any(len(row) == 0 for row in answer_ids + wrong_ids):
        raise TaskError(f"Task {name!r}: every pair needs at least one answer and one wrong answer.")
    return ContrastiveTask(
        name=name,
        positive_tokens=pad_rows(pos_ids, pad),
        negative_tokens=pad_rows(neg_ids, pad),
        lengths=torch.tensor([len(p) for p in pos_ids]),
        answer_tokens=pad_rows(answer_ids, NO_TOKEN),
        wrong_tokens=pad_rows(wrong_ids, NO_TOKEN),
        metric=metric,
        template_ids=torch.tensor(list(template_ids) if template_ids is not None else [0] * len(pos_ids)),
        positive_prompts=tuple(positives),
        negative_prompts=tuple(negatives),
    )
