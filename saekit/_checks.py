"""The checks at saekit's public boundary, each in one place.

Every public function that takes a model, a tokenizer, a task, a device, seeds or a count calls
the helper here for it before any expensive work, so a wrong argument fails with a saekit error
that names the problem and the fix instead of a traceback from deep inside torch or
TransformerLens (or, worse, a silently wrong number).
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from saekit.errors import ModelError, SaekitError, TaskError

T = TypeVar("T")

_LOAD_HINT = "load one with saekit.load_model(...) or pass your own TransformerLens model"


def _is_integer(value: Any) -> bool:
    """True for ints, numpy integers and integer 0-d tensors (anything usable as an index); not bools."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def check_count(value: Any, name: str, error: type[SaekitError] = SaekitError, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer of at least ``minimum`` (bools refused), else ``error``."""
    if not _is_integer(value) or value < minimum:
        raise error(f"{name} must be an integer of at least {minimum}, got {value!r}.")
    return operator.index(value)


def check_seeds(seeds: Any) -> tuple[int, ...]:
    """The seeds of an iterable of integers; a bare integer is refused, since it is ambiguous."""
    if _is_integer(seeds):
        raise SaekitError(
            f"seeds takes the seeds themselves, not how many: for {seeds} seeds pass "
            f"seeds=range({seeds}); for the one seed {seeds}, seeds=[{seeds}]."
        )
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise SaekitError(f"seeds must be an iterable of integers such as range(10), got {seeds!r}.")
    seeds = tuple(seeds)
    if not all(_is_integer(seed) for seed in seeds):
        raise SaekitError(f"seeds must be integers, got {seeds!r}.")
    if not seeds:
        raise SaekitError("Give at least one seed, e.g. seeds=range(10).")
    return tuple(operator.index(seed) for seed in seeds)


def check_device(device: Any) -> None:
    """Refuse a device torch does not know or this machine does not have, before any loading."""
    if device == "cpu":  # the default; no need to import torch to accept it
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SaekitError(f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:1' or 'mps'.") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SaekitError(
                f"device={device!r} but torch sees no CUDA GPU on this machine "
                f"(torch.cuda.is_available() is False); use device='cpu'."
            )
        if parsed.index is not None and parsed.index >= count:
            raise SaekitError(f"device={device!r} but this machine has {count} GPU(s), numbered from 0.")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise SaekitError(f"device={device!r} but no Apple GPU (MPS) is available here; use device='cpu'.")


def check_finite_weights(module: Any, source: str, error: type[SaekitError] = ModelError) -> None:
    """Refuse a model (or SAE) whose parameters hold NaN or inf: all it computes would be NaN."""
    import torch

    bad = [name for name, param in module.named_parameters() if not torch.isfinite(param).all()]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise error(
            f"The weights of {source} hold NaN or inf ({shown}), so every activation and metric "
            f"would be NaN. Use a checkpoint saved before training diverged, or float32."
        )


def check_model(model: Any, caller: str) -> None:
    """Refuse anything but a usable causal TransformerLens model, before it is run.

    Checks the type (a name or a Hugging Face model is not one), causal attention (the method
    reads next-token predictions), finite weights, and that its tokenizer fits its vocabulary.
    """
    if isinstance(model, (str, os.PathLike)):
        raise ModelError(
            f"{caller} takes a loaded model, not the name {str(model)!r}: load it first with "
            f"model = saekit.load_model({str(model)!r})."
        )
    if not all(hasattr(model, name) for name in ("cfg", "hook_dict", "W_O", "named_parameters")):
        raise ModelError(f"{caller} takes a TransformerLens model, got {type(model).__name__}; {_LOAD_HINT}.")
    direction = getattr(model.cfg, "attention_dir", "causal")
    if direction != "causal":
        raise ModelError(
            f"{caller}: the model's attention is {direction!r}, not causal. saekit reads a "
            f"model's next-token predictions, which only a causal (decoder-only, GPT-style) "
            f"model makes; bidirectional models such as BERT are not supported."
        )
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None and len(tokenizer) > model.cfg.d_vocab:
        raise ModelError(
            f"{caller}: the model's tokenizer has {len(tokenizer)} tokens but its embedding only "
            f"{model.cfg.d_vocab}, so some token ids have no embedding. Pair the model with the "
            f"tokenizer it was trained with."
        )
    check_finite_weights(model, "the model")


def tokenizer_of(model_or_tokenizer: Any, caller: str) -> Any:
    """The tokenizer of a model, or the tokenizer itself; a `TaskError` for anything else."""
    if isinstance(model_or_tokenizer, (str, os.PathLike)):
        raise TaskError(
            f"{caller} takes a model or a tokenizer object, not the string "
            f"{str(model_or_tokenizer)!r}; load it first (saekit.load_model, or "
            f"transformers.AutoTokenizer.from_pretrained)."
        )
    tokenizer = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    if tokenizer is None:
        raise TaskError(f"{caller}: the model has no tokenizer; pass a tokenizer, or load the model with one.")
    if not all(callable(getattr(tokenizer, name, None)) for name in ("encode", "convert_ids_to_tokens")):
        raise TaskError(
            f"{caller} takes a Hugging Face tokenizer or a model that carries one (model.tokenizer), "
            f"got {type(model_or_tokenizer).__name__}."
        )
    return tokenizer


def check_task(task: Any, caller: str) -> None:
    """Refuse anything but a `saekit.tasks.ContrastiveTask`."""
    from saekit.tasks.base import ContrastiveTask

    if not isinstance(task, ContrastiveTask):
        raise TaskError(
            f"{caller} takes a ContrastiveTask (from saekit.tasks.make_task or task_from_strings), "
            f"got {type(task).__name__}."
        )


def check_model_and_task(model: Any, task: Any, caller: str) -> None:
    """Refuse a model or a task that is not one, and a task whose tokens the model cannot read.

    Prompt ids must lie in the model's vocabulary (a task tokenized for another model fails
    here: a BPE task on a word-level model), answer ids in its unembedding, and prompts within
    its context length.
    """
    from saekit.tasks.base import NO_TOKEN

    check_model(model, caller)
    check_task(task, caller)
    cfg = model.cfg
    prompt_ids = (task.positive_tokens, task.negative_tokens)
    largest = max(int(ids.max()) for ids in prompt_ids)
    if largest >= cfg.d_vocab or min(int(ids.min()) for ids in prompt_ids) < 0:
        raise TaskError(
            f"{caller}: task {task.name!r} holds token id {largest} but the model's vocabulary has "
            f"{cfg.d_vocab} tokens; the task was tokenized for another model (a BPE task on a "
            f"word-level model, say). Build it for this one: make_task(name, model)."
        )
    answers = [ids[ids != NO_TOKEN] for ids in (task.answer_tokens, task.wrong_tokens)]
    d_vocab_out = cfg.d_vocab_out if getattr(cfg, "d_vocab_out", -1) > 0 else cfg.d_vocab
    largest_answer = max((int(ids.max()) for ids in answers if ids.numel()), default=-1)
    if largest_answer >= d_vocab_out or min((int(ids.min()) for ids in answers if ids.numel()), default=0) < 0:
        raise TaskError(
            f"{caller}: task {task.name!r} has answer token id {largest_answer} but the model's "
            f"unembedding has {d_vocab_out} outputs; the answers were tokenized for another "
            f"model. Build the task with this model's tokenizer."
        )
    longest = int(task.lengths.max())
    if longest > cfg.n_ctx:
        raise TaskError(
            f"{caller}: task {task.name!r} has prompts of {longest} tokens but the model reads at "
            f"most {cfg.n_ctx} (n_ctx); use shorter prompts."
        )


def checks_model_and_task(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate a public function whose first two arguments are a model and a task, so that
    `check_model_and_task` runs before it does."""

    @functools.wraps(function)
    def checked(model: Any, task: Any, *args: Any, **kwargs: Any) -> T:
        check_model_and_task(model, task, f"{function.__name__}()")
        return function(model, task, *args, **kwargs)

    return checked
