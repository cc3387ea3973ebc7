"""Train a toy model on the four toy tasks: ``python -m saekit.zoo.train [--out FOLDER]``.

Training has two phases, each step's data seeded from the training seed and the step, and
ends with `rescale_residual_stream`:

1. **Induction warm-up** (``induction_warmup_steps``): random word sequences followed by a
   repeat of their tail, next-token loss on every word of the repeat
   (`induction_warmup_batch`). Every position of the repeat is a training signal, so
   previous-token and induction heads form in about 1500 steps; trained only at the few answer
   positions of the task prompts, they had not formed after 4000 steps. The docstring task,
   which needs the same copying, is learned faster on top of them. A few sequences per step
   copy from 2 words back (``induction_two_back``), a distance the uniform draw rarely trains.
2. **The four tasks** (`saekit.tasks.toy.toy_pairs`), next token at the answer position
   only, plus a few warm-up sequences per step (``induction_replay``) so that copying is kept.
   Positives have the task's answer as target (for greater-than, 95 % spread over every later
   year and 5 % over the others: ``answer_smoothing``); negatives have a uniform target over
   their ``negative_options``, the tokens that are equally plausible once the task's
   information is removed, so that the model learns to sit at chance on them. A
   **head-sparsity penalty** (an L1 penalty on each head's share of the residual stream,
   `AttnOnlyTransformer.forward_with_head_shares`) lets a head stay silent on prompts it
   has no job on. Without it, a model that only ever sees four tasks spreads each of them over
   every head, and its circuits are neither small nor distinct; pretrained models have heads
   that write little on text they are not used for.

Training is deterministic on CPU for a given seed and thread count, and never touches the
global random state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from saekit._io import atomic_folder, dumps_json
from saekit.errors import SaekitError
from saekit.tasks import TASK_NAMES
from saekit.tasks.base import pad_rows
from saekit.tasks.toy import VOCABULARY, ToyPair, toy_pairs
from saekit.zoo import ZOO_DIR
from saekit.zoo.model import AttnOnlyTransformer, ToyModelConfig
from saekit.zoo.tokenizer import build_toy_tokenizer, save_toy_tokenizer

DEFAULT_OUT = ZOO_DIR / "toy-4l"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a trained toy model."""

    seed: int = 0
    steps: int = 3000
    """Optimiser steps in all, the induction warm-up included."""
    pairs_per_task: dict[str, int] = field(
        default_factory=lambda: {"ioi": 16, "greater-than": 16, "docstring": 32, "induction": 32}
    )
    """Pairs of each task per step; each pair gives one positive and one negative example.
    Docstring and induction, learned last, get twice as many."""
    induction_warmup_steps: int = 1500
    induction_warmup_batch: int = 64
    """Repeated sequences per warm-up step."""
    induction_warmup_min_length: int = 3
    induction_warmup_max_length: int = 24
    """Length range of a warm-up sequence before its repeat (one length per step), so that the
    distance to the earlier copy varies and only matching content finds it."""
    answer_smoothing: dict[str, float] = field(default_factory=lambda: {"greater-than": 0.05})
    """Share of a positive's target spread over its wrong answers, per task (default 0). A
    probability metric saturates: trained to put all its mass on the later years, the model
    ends with so wide a margin that patching any one of the heads that carry it leaves the
    probability at 1, and single-head patching finds no circuit. GPT-2 small's own probability
    difference on greater-than is about 0.8."""
    induction_two_back: int = 16
    """Warm-up sequences per warm-up step whose repeat starts 2 words before the end
    (``... A B A`` → ``B``), on top of ``induction_warmup_batch``; half as many join each
    replay. Under the uniform draw about one trained word in L²/2 copies from 2 back (L the
    sequence's length), and a model trained on it alone did so only in sequences of up to 8 words."""
    induction_two_back_min_length: int = 9
    """Shortest of those sequences: the lengths at which the uniform draw alone falls short."""
    induction_replay: int = 16
    """Warm-up sequences added to every step after the warm-up, so that copying from any
    distance is kept while the tasks are learned (0: none)."""
    head_sparsity: float = 0.05
    """Weight of the head-sparsity penalty: the sum over heads of each head's share of the
    residual stream, averaged over the real positions of each prompt and over prompts."""
    head_sparsity_ramp: int = 500
    """Steps after the warm-up over which the penalty's weight rises linearly to ``head_sparsity``."""
    lr: float = 3e-3
    """Peak learning rate, reached after ``warmup_steps`` and then kept (no decay)."""
    weight_decay: float = 0.01
    warmup_steps: int = 150
    grad_clip: float = 1.0
    eval_every: int = 250
    model: ToyModelConfig = field(default_factory=lambda: ToyModelConfig(d_vocab=len(VOCABULARY)))

    def __post_init__(self) -> None:
        """Refuse, before training, a task missing from ``pairs_per_task`` and a per-task setting
        for a task that does not exist (it would be ignored)."""
        check_pairs_per_task(self.pairs_per_task)
        check_answer_smoothing(self.answer_smoothing)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "model"}


def check_per_task(name: str, values: dict, valid, what: str) -> None:
    """Raise `SaekitError` if ``values`` (a setting keyed by task) names a task that does not
    exist or holds a value that is not ``what``."""
    if not isinstance(values, dict):
        raise SaekitError(f"{name} is a dict keyed by task ({', '.join(TASK_NAMES)}), got {values!r}.")
    unknown = sorted(set(values) - set(TASK_NAMES))
    if unknown:
        raise SaekitError(f"{name} is keyed by task ({', '.join(TASK_NAMES)}); {unknown} is not one.")
    wrong = {task: value for task, value in values.items() if not valid(value)}
    if wrong:
        raise SaekitError(f"{name} takes {what} per task, got {wrong}.")


def check_pairs_per_task(pairs: dict[str, int]) -> None:
    """``pairs_per_task`` holds a positive number of pairs per step for every task."""
    check_per_task("pairs_per_task", pairs, lambda n: type(n) is int and n >= 1, "a positive integer")
    if set(pairs) != set(TASK_NAMES):
        raise SaekitError(f"pairs_per_task needs every task ({', '.join(TASK_NAMES)}), got {sorted(pairs)}.")


def check_answer_smoothing(smoothing: dict[str, float]) -> None:
    """``answer_smoothing`` holds, per task, the share of a positive's target on its wrong answers."""
    check_per_task("answer_smoothing", smoothing, lambda v: type(v) in (int, float) and 0 <= v < 1, "a share in [0, 1)")


@dataclass(frozen=True)
class TrainingBatch:
    """Prompts (BOS-prefixed, right-padded) and a soft target at each answer position."""

    tokens: Int[Tensor, "batch seq"]
    targets: Float[Tensor, "batch seq vocab"]
    """Target distribution of the next token; all zero where a position is not trained on."""
    candidates: Float[Tensor, "batch seq vocab"] | None = None
    """1.0 on the tokens a task prompt's answer is chosen among (answers, wrong answers and the
    negative's options) at each trained position; None unless `pairs_batch` was asked for them."""
    answer_signs: Float[Tensor, "batch seq vocab"] | None = None
    """At a task prompt's final position, +1.0 on the answers and -1.0 on the wrong answers (what
    the task's metric compares); 0 elsewhere. None unless `pairs_batch` was asked for them."""

    def to(self, device: torch.device | str) -> TrainingBatch:
        """The batch on ``device`` (batches are built on the CPU, from seeded generators)."""
        parts = (self.tokens, self.targets, self.candidates, self.answer_signs)
        return TrainingBatch(*(None if part is None else part.to(device) for part in parts))


def training_batch(tokenizer, task_name: str, n_pairs: int, seed: int, answer_smoothing: float = 0.0) -> TrainingBatch:
    """``n_pairs`` fresh pairs of one toy task as ``2 * n_pairs`` examples, seeded by ``seed``
    (`pairs_batch`)."""
    return pairs_batch(tokenizer, toy_pairs(task_name, n_pairs, seed), answer_smoothing)


def pairs_batch(tokenizer, pairs: list[ToyPair], answer_smoothing: float = 0.0, answer_sets: bool = False) -> TrainingBatch:
    """``pairs`` as ``2 * len(pairs)`` examples (rows: positive, negative, positive, ...).

    A positive's target is its answer (uniform over the answers when there are several), with
    ``answer_smoothing`` of the mass spread over its wrong answers instead; a negative's a
    uniform distribution over its ``negative_options``. Earlier answer positions
    (`ToyPair.earlier_answers`) are trained too: each ends a shorter prompt of the task. With
    ``answer_sets``, the batch also carries its candidates and answer signs (`TrainingBatch`; both
    prompts of a pair share them), which only some strictness options read.
    """
    prompts, targets = [], []  # targets: (word index, [(target words, their total mass), ...]) per prompt
    for pair in pairs:
        last = len(pair.positive.split()) - 1
        final = [(pair.answers, 1.0 - answer_smoothing), (pair.wrong, answer_smoothing)]
        prompts += [pair.positive, pair.negative]
        targets.append([(last, final), *((i, [((answer,), 1.0)]) for i, answer in pair.earlier_answers)])
        targets.append([(i, [(pair.negative_options, 1.0)]) for i, _ in [(last, None), *pair.earlier_answers]])
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    tokens = pad_rows([[tokenizer.bos_token_id, *row] for row in ids], tokenizer.pad_token_id)
    vocab = tokenizer.get_vocab()
    rows, positions, token_ids, masses = [], [], [], []
    for row, prompt_targets in enumerate(targets):
        for word_index, groups in prompt_targets:
            for words, mass in groups:
                # Word i sits at position i + 1 (after BOS) and predicts the next word.
                rows += [row] * len(words)
                positions += [word_index + 1] * len(words)
                token_ids += [vocab[word] for word in words]
                masses += [mass / len(words)] * len(words)
    target_probs = torch.zeros(*tokens.shape, len(tokenizer))
    target_probs.index_put_(
        (torch.tensor(rows), torch.tensor(positions), torch.tensor(token_ids)), torch.tensor(masses), accumulate=True
    )
    if not answer_sets:
        return TrainingBatch(tokens, target_probs)
    candidates, answer_signs = torch.zeros_like(target_probs), torch.zeros_like(target_probs)
    for row, prompt_targets in enumerate(targets):
        pair = pairs[row // 2]
        choices = [vocab[word] for word in {*pair.answers, *pair.wrong, *pair.negative_options}]
        for word_index, _ in prompt_targets:
            candidates[row, word_index + 1, choices] = 1.0
        final = prompt_targets[0][0] + 1
        answer_signs[row, final, [vocab[word] for word in pair.wrong]] = -1.0
        answer_signs[row, final, [vocab[word] for word in pair.answers]] = 1.0
    return TrainingBatch(tokens, target_probs, candidates, answer_signs)


def induction_warmup_batch(
    tokenizer, n_sequences: int, min_length: int, max_length: int, seed: int,
    n_two_back: int = 0, two_back_min_length: int = 2,
) -> TrainingBatch:
    """``n_sequences`` random word sequences, each followed by a repeat of it from a random word
    to its end; every word of the repeat but the last is trained to predict the word that
    followed it the first time. Lengths (in [min_length, max_length]) and starts are drawn per
    sequence, so the earlier copy lies 2 to ``max_length`` words back and only matching the
    current word finds it, as in the induction task's prompts. ``n_two_back`` more sequences
    (lengths from ``two_back_min_length``) repeat their last two words, so that their one
    trained word copies from 2 back."""
    from saekit.tasks.toy import INDUCTION_POOL

    generator = torch.Generator().manual_seed(seed)
    pool = torch.tensor(tokenizer.convert_tokens_to_ids(list(INDUCTION_POOL)))
    rows, targets = [], []
    for index in range(n_sequences + n_two_back):
        two_back = index >= n_sequences
        shortest = two_back_min_length if two_back else min_length
        length = int(torch.randint(shortest, max_length + 1, (1,), generator=generator))
        start = length - 2 if two_back else int(torch.randint(0, length - 1, (1,), generator=generator))
        sequence = pool[torch.randperm(len(pool), generator=generator)[:length]]
        rows.append(torch.cat([torch.tensor([tokenizer.bos_token_id]), sequence, sequence[start:]]))
        targets.append(sequence[start + 1:])
    tokens = pad_rows([row.tolist() for row in rows], tokenizer.pad_token_id)
    target_probs = torch.zeros(*tokens.shape, len(tokenizer))
    for i, (row, answers) in enumerate(zip(rows, targets)):
        # The repeat's first word sits just after the first copy (BOS + length words).
        first = len(row) - len(answers) - 1
        target_probs[i, torch.arange(first, first + len(answers)), answers] = 1.0
    return TrainingBatch(tokens, target_probs)


def _step_seed(seed: int, step: int, task_index: int) -> int:
    """A data seed of its own for every (training seed, step, task)."""
    return int(np.random.SeedSequence([seed, step, task_index]).generate_state(1)[0])


def answer_loss(
    model: AttnOnlyTransformer, batch: TrainingBatch, pad_token_id: int
) -> tuple[Float[Tensor, ""], Float[Tensor, ""]]:
    """Mean cross-entropy between the soft targets and the predictions at the trained positions,
    and the head-sparsity penalty: per prompt, the sum over heads of their share of the residual
    stream, averaged over its real (non-padding) positions; then averaged over prompts."""
    logits, shares = model.forward_with_head_shares(batch.tokens)
    trained = batch.targets.sum(-1) > 0
    cross_entropy = -(batch.targets * logits.log_softmax(-1)).sum(-1)[trained].mean()
    real = (batch.tokens != pad_token_id).float()
    penalty = ((shares.sum((2, 3)) * real).sum(1) / real.sum(1)).mean()
    return cross_entropy, penalty


def _learning_rate(config: TrainingConfig, step: int) -> float:
    """Linear warm-up, then constant: the weights after step n do not depend on ``steps``."""
    return config.lr * min(1.0, (step + 1) / config.warmup_steps)


def _sparsity_weight(config: TrainingConfig, step: int) -> float:
    """0 during the induction warm-up, then rising linearly to ``head_sparsity``."""
    after_warmup = step - config.induction_warmup_steps
    if after_warmup < 0:
        return 0.0
    return config.head_sparsity * min(1.0, (after_warmup + 1) / config.head_sparsity_ramp)


def _step_loss(model: AttnOnlyTransformer, tokenizer, config: TrainingConfig, step: int) -> tuple[Tensor, float]:
    """The loss to minimise at ``step`` and its cross-entropy part (what ``losses`` records)."""
    pad = tokenizer.pad_token_id

    def warmup_batch(n_sequences: int, n_two_back: int) -> TrainingBatch:
        return induction_warmup_batch(
            tokenizer, n_sequences, config.induction_warmup_min_length,
            config.induction_warmup_max_length, _step_seed(config.seed, step, len(TASK_NAMES)),
            n_two_back, config.induction_two_back_min_length,
        )

    if step < config.induction_warmup_steps:
        batch = warmup_batch(config.induction_warmup_batch, config.induction_two_back)
        cross_entropy, _ = answer_loss(model, batch, pad)
        return cross_entropy, cross_entropy.item()
    # One batch per task keeps padding short (docstring prompts are twice as long as the rest).
    batches = [
        training_batch(
            tokenizer, name, config.pairs_per_task[name], _step_seed(config.seed, step, i),
            config.answer_smoothing.get(name, 0.0),
        )
        for i, name in enumerate(TASK_NAMES)
    ]
    if config.induction_replay:
        batches.append(warmup_batch(config.induction_replay, config.induction_two_back // 2))
    parts = [answer_loss(model, batch, pad) for batch in batches]
    cross_entropy = sum(ce for ce, _ in parts) / len(parts)
    penalty = sum(p for _, p in parts) / len(parts)
    return cross_entropy + _sparsity_weight(config, step) * penalty, cross_entropy.item()


@torch.no_grad()
def rescale_residual_stream(model: AttnOnlyTransformer, tokenizer, n_pairs: int = 64) -> float:
    """Scale the residual stream so that head writes have unit per-element RMS; returns the factor.

    The logits do not depend on that scale (`AttnOnlyTransformer.residual_scale_parameters`)
    and training does not fix it; the head-sparsity penalty leaves head writes small (RMS about
    0.06), where the paper's SAE L1 coefficient switches off nearly every latent. So the scale
    is set here, measured on the real positions of ``n_pairs`` prompt pairs of each task.
    """
    from saekit.tasks import make_task

    sum_of_squares, count = 0.0, 0
    for name in TASK_NAMES:
        task = make_task(name, tokenizer, n_pairs, seed=0)
        for tokens in (task.positive_tokens, task.negative_tokens):
            real = tokens != tokenizer.pad_token_id
            for layer_results in model.residual_and_head_results(tokens)[1]:
                sum_of_squares += float(layer_results[real].pow(2).sum())
                count += layer_results[real].numel()
    factor = (count / sum_of_squares) ** 0.5
    for param in model.residual_scale_parameters():
        param.mul_(factor)
    return factor


@torch.enable_grad()
def train_toy_model(config: TrainingConfig, log=print, on_eval=None) -> tuple[AttnOnlyTransformer, list[float]]:
    """Train a toy model (then `rescale_residual_stream`); returns it and the cross-entropy of every step.

    Every ``eval_every`` steps the model is evaluated on the four tasks, the result passed to
    ``log`` (a line of text) and ``on_eval(step, model, scores)`` (e.g. to keep checkpoints).
    """
    from saekit.zoo.evaluate import evaluate_toy_model

    tokenizer = build_toy_tokenizer()
    model = AttnOnlyTransformer(config.model, seed=config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    losses = []
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        loss, cross_entropy = _step_loss(model, tokenizer, config, step)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(cross_entropy)
        if config.eval_every and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
            model.eval()
            scores = evaluate_toy_model(model, tokenizer)
            model.train()
            summary = "  ".join(
                f"{name} acc {s.pos_accuracy:.3f} pos {s.pos_metric:+.2f} neg {s.neg_metric:+.2f}"
                for name, s in scores.items()
            )
            if log is not None:
                log(f"step {step + 1:5d}  loss {np.mean(losses[-50:]):.4f}  {summary}")
            if on_eval is not None:
                on_eval(step + 1, model, scores)
    model.eval()
    rescale_residual_stream(model, tokenizer)
    return model, losses


def save_toy_model(
    model: AttnOnlyTransformer,
    config: TrainingConfig,
    out: str | Path,
    name: str = "toy-4l",
    tokenizer=None,
    trained_on: str = "toy ioi, greater-than, docstring and induction",
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``tokenizer/`` (``tokenizer``, or the toy
    vocabulary's when None) to ``out``, atomically.

    The files are written into a sibling folder that replaces ``out`` as a whole (keeping
    other files there, such as ``ground_truth.json``), so an interrupted save leaves the old
    model or the new one.
    """
    from safetensors.torch import save_file

    cfg = config.model
    description = (
        f"attention-only, {cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model}, "
        f"word-level vocabulary of {cfg.d_vocab}; trained by saekit on {trained_on}"
    )
    document = {"name": name, "description": description, "tl_config": cfg.tl_config(), "training": config.to_dict()}
    with atomic_folder(out) as staging:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, staging / "model.safetensors")
        save_toy_tokenizer(staging / "tokenizer", tokenizer)
        (staging / "config.json").write_text(dumps_json(document))
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m saekit.zoo.train [...]`` is ``saekit zoo train [...]``."""
    import sys

    from saekit.cli import main as cli_main

    return cli_main(["zoo", "train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
