"""The four tasks in the toy models' word-level vocabulary, built like their GPT-2-scale originals.

Every word of every prompt is one token (the toy tokenizer splits on whitespace), so names,
years and argument names are single tokens by construction. Each generator returns the same
contrastive structure as the original task:

- **ioi** "When Mary and John went to the store , John gave a drink to" → Mary. Eight templates
  put the names at different positions; ABBA and BABA orders. Negative: the first occurrence of
  the subject replaced by a third name, so no name repeats (the paper's; or the giver replaced,
  `TOY_NEGATIVES`). Metric: logit(IO) − logit(S).
- **greater-than** "The war lasted from the year 17 32 to the year 17" → any year token above
  32 (year tokens are the two-digit words 00..99). Five templates put the start year at
  different positions and distances from the end, three with a second two-digit number (a
  count of days, years or men) that is not the start year. Negative: start year 01. Metric:
  Σ p(years > YY) − Σ p(years ≤ YY).
- **docstring** a ``def`` with six arguments and a ``:param`` docstring documenting two
  consecutive ones; answer: the argument after them. Negative ("random_random"): def arguments
  and documented parameters replaced by unrelated names. Metric: logit(answer) − max logit of
  the other five arguments.
- **induction** a random word sequence followed by a repeat of k of its words (from a random
  start); answer: the word that followed them in the first occurrence. Negative: the repeat replaced by fresh words
  (or their first occurrence and the answer, `TOY_NEGATIVES`).
  Metric: logit(answer) − mean logit of the other words of the first occurrence (the tokens a
  copying model could confuse it with).

`toy_pairs` also says what a negative's next token could plausibly be (its
``negative_options``); `saekit.zoo.train` trains the toy models on a uniform target over
them, so that on negatives the task metric sits near chance. Generation uses a local
``numpy.random.Generator`` seeded by ``seed`` and never touches the global random state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np

from saekit.errors import TaskError
from saekit.tasks.base import ContrastiveTask, MetricKind, task_from_strings, tokenizer_setting

BOS, PAD, UNK = "<bos>", "<pad>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (BOS, PAD, UNK)

NAMES = (
    "Mary", "John", "Alice", "Bob", "Emma", "James", "Sarah", "David", "Laura", "Paul", "Anna",
    "Mark", "Kate", "Tom", "Lucy", "Peter", "Julia", "Sam", "Helen", "Max", "Rose", "Adam",
    "Clara", "Ben",
)
PLACES = (
    "store", "park", "school", "garden", "station", "office", "beach", "market", "library",
    "house", "river", "hospital",
)
OBJECTS = (
    "drink", "book", "ring", "bone", "letter", "ball", "basket", "kiss", "gift", "snack",
    "necklace", "key",
)
IOI_TEMPLATES = (
    "When {N1} and {N2} went to the {PLACE} , {S} gave a {OBJECT} to",
    "Then , {N1} and {N2} had a lot of fun at the {PLACE} . {S} gave a {OBJECT} to",
    "{N1} and {N2} went to the {PLACE} . {S} gave a {OBJECT} to",
    "While {N1} and {N2} were working at the {PLACE} , {S} handed a {OBJECT} to",
    "After a long day at the {PLACE} , {N1} and {N2} sat down . {S} passed a {OBJECT} to",
    "Then {N1} and {N2} found a {OBJECT} at the {PLACE} , and {S} gave it to",
    "When {N1} met {N2} at the {PLACE} , {S} gave a {OBJECT} to",
    "The {PLACE} was quiet when {N1} and {N2} arrived , so {S} threw a {OBJECT} to",
)

YEARS = tuple(f"{y:02d}" for y in range(100))
CENTURIES = tuple(f"{c}" for c in range(11, 20))
EVENTS = (
    "war", "trip", "reign", "project", "drought", "strike", "voyage", "siege", "festival",
    "expedition",
)
#: The start year sits at different positions and distances from the end, and some templates
#: hold a second two-digit number ({NN}, a count): neither position nor "the earlier number"
#: finds the start year; only "the number after the first {CC}" does, as in Hanna et al.
GREATER_THAN_TEMPLATES = (
    "The {EVENT} lasted from the year {CC} {YY} to the year {CC}",
    "The {EVENT} started in the year {CC} {YY} and ended in the year {CC}",
    "After {NN} days of talks , the {EVENT} began in the year {CC} {YY} and lasted until the year {CC}",
    "In the year {CC} {YY} the {EVENT} began , and it went on for {NN} years until the year {CC}",
    "From the year {CC} {YY} , the {EVENT} ran with {NN} men to the year {CC}",
)
#: Start years of positives (as in Hanna et al.: at least one year above and below exists).
START_YEARS = range(2, 99)
NEGATIVE_START_YEAR = 1

FUNCTION_NAMES = (
    "port", "load", "check", "render", "update", "parse", "fetch", "build", "merge", "train",
    "plot", "send",
)
ARGUMENT_NAMES = (
    "size", "files", "last", "name", "path", "data", "mode", "value", "count", "index", "items",
    "text", "user", "host", "token", "limit", "offset", "color", "width", "height", "source",
    "target", "level", "state", "config", "result", "node", "parent", "child", "buffer", "field",
    "label", "query", "score", "step", "weight", "shape", "prefix", "timeout", "version",
)
DESCRIPTION_WORDS = (
    "oil", "column", "piece", "crime", "population", "unit", "dark", "fresh", "metal", "wide",
    "green", "line", "simple", "old", "quick", "table",
)
DOCSTRING_N_ARGS = 6
#: 1-based index of the first documented argument; the answer is the argument two later.
DOCSTRING_FIRST_DOCUMENTED = (1, 2, 3)
DOCSTRING_DESCRIPTION_LENGTHS = (1, 2, 3)

INDUCTION_LENGTHS = range(6, 13)
#: Words random induction sequences are drawn from: every content word of the vocabulary.
INDUCTION_POOL: tuple[str, ...] = tuple(
    sorted(set(NAMES + PLACES + OBJECTS + EVENTS + FUNCTION_NAMES + ARGUMENT_NAMES + DESCRIPTION_WORDS))
)


def _template_words(templates: tuple[str, ...]) -> set[str]:
    return {word for t in templates for word in t.split() if not re.fullmatch(r"\{\w+\}", word)}


DOCSTRING_SYNTAX = ("def", "(", "self", ",", ")", ":", '"""', ":param")

#: The toy vocabulary, in token-id order: special tokens, the 100 year words, then every other
#: word of the four tasks, sorted. Built from the word lists above, so no prompt word is unknown.
VOCABULARY: tuple[str, ...] = (
    *SPECIAL_TOKENS,
    *YEARS,
    *sorted(
        (set(INDUCTION_POOL) | _template_words(IOI_TEMPLATES) | _template_words(GREATER_THAN_TEMPLATES)
         | set(DOCSTRING_SYNTAX)) - set(YEARS)
    ),
)


@dataclass(frozen=True)
class ToyPair:
    """One positive/negative prompt pair, with what a model should predict after each."""

    positive: str
    negative: str
    answers: tuple[str, ...]
    wrong: tuple[str, ...]
    template_id: int
    negative_options: tuple[str, ...]
    """Words the negative's next token could equally be: the task's information is gone."""
    earlier_answers: tuple[tuple[int, str], ...] = ()
    """(word index, answer) of earlier words of the positive that end a shorter prompt of the
    same task (induction: every word of the repeat); at the same index of the negative the next
    word is as unpredictable as at its end."""


def _distinct(rng: np.random.Generator, pool: tuple[str, ...], k: int) -> list[str]:
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


TOY_NEGATIVES: dict[str, tuple[str, ...]] = {"ioi": ("subject", "giver"), "induction": ("repeat", "stretch")}
"""The negatives a task can take, its default (the one every toy model and notebook uses) first.

- ioi: what is replaced by a third name so that no name repeats. ``"subject"`` its first
  occurrence (the paper's negative; its S is then the giver, whom a language model does not name
  as the recipient, so IO − S is not at chance there), ``"giver"`` its second (the first clause
  keeps IO and S, which the negative cannot tell apart: IO − S at chance 0 by symmetry).
- induction: what is replaced by fresh words so that nothing repeats. ``"repeat"`` the repeat
  (the sequence is the positive's, so every head's writes on it are too, and patching a
  previous-token head from the negative changes nothing the induction head reads there),
  ``"stretch"`` the repeated words' first occurrence and the word after them, the answer (the
  repeat is the positive's; the sequence's writes that point to the answer are gone).

Toy models trained on another negative record it in their tokenizer (`NEGATIVES_MARKER`)."""
NEGATIVES_MARKER = "saekit_negatives"
"""Key in a toy tokenizer's ``tokenizer_config.json`` mapping each task whose negative is not
its default to the one it takes (absent: every default)."""


def _ioi_pair(rng: np.random.Generator, negative: str = "subject") -> ToyPair:
    template_id = int(rng.integers(len(IOI_TEMPLATES)))
    io, s, third = _distinct(rng, NAMES, 3)
    place, obj = PLACES[rng.integers(len(PLACES))], OBJECTS[rng.integers(len(OBJECTS))]
    abba = bool(rng.integers(2))
    first, second = (io, s) if abba else (s, io)
    fill = partial(IOI_TEMPLATES[template_id].format, PLACE=place, OBJECT=obj)
    positive = fill(N1=first, N2=second, S=s)
    if negative == "giver":
        return ToyPair(positive, fill(N1=first, N2=second, S=third), (io,), (s,), template_id, (io, s))
    negative_prompt = fill(N1=io, N2=third, S=s) if abba else fill(N1=third, N2=io, S=s)
    return ToyPair(positive, negative_prompt, (io,), (s,), template_id, (io, third, s))


def _greater_than_pair(rng: np.random.Generator) -> ToyPair:
    template_id = int(rng.integers(len(GREATER_THAN_TEMPLATES)))
    start = int(rng.choice(START_YEARS))
    event, century = EVENTS[rng.integers(len(EVENTS))], CENTURIES[rng.integers(len(CENTURIES))]
    count = YEARS[rng.integers(10, len(YEARS))]
    fill = partial(GREATER_THAN_TEMPLATES[template_id].format, EVENT=event, CC=century, NN=count)
    return ToyPair(
        positive=fill(YY=YEARS[start]),
        negative=fill(YY=YEARS[NEGATIVE_START_YEAR]),
        answers=YEARS[start + 1:],
        wrong=YEARS[: start + 1],
        template_id=template_id,
        negative_options=YEARS[NEGATIVE_START_YEAR + 1:],
    )


def _docstring_prompt(
    function: str, args: list[str], documented: list[str], description: list[str], param_words: list[str]
) -> str:
    signature = " , ".join(["self", *args])
    params = " ".join(
        f":param {arg} : {param_words[2 * i]} {param_words[2 * i + 1]}" for i, arg in enumerate(documented)
    )
    return f'def {function} ( {signature} ) : """ {" ".join(description)} {params} :param'


def _docstring_pair(rng: np.random.Generator) -> ToyPair:
    first = int(rng.choice(DOCSTRING_FIRST_DOCUMENTED))
    n_description = int(rng.choice(DOCSTRING_DESCRIPTION_LENGTHS))
    names = _distinct(rng, ARGUMENT_NAMES, 2 * DOCSTRING_N_ARGS + 2)
    args, corrupt_args, corrupt_documented = names[:6], names[6:12], names[12:]
    words = [DESCRIPTION_WORDS[i] for i in rng.integers(len(DESCRIPTION_WORDS), size=n_description + 4)]
    description, param_words = words[:n_description], words[n_description:]
    function = FUNCTION_NAMES[rng.integers(len(FUNCTION_NAMES))]
    answer = args[first + 1]
    return ToyPair(
        positive=_docstring_prompt(function, args, args[first - 1:first + 1], description, param_words),
        negative=_docstring_prompt(function, corrupt_args, corrupt_documented, description, param_words),
        answers=(answer,),
        wrong=tuple(a for a in args if a != answer),
        template_id=first + 1,
        negative_options=tuple(corrupt_args),
    )


def _induction_pair(rng: np.random.Generator, negative: str = "repeat") -> ToyPair:
    length = int(rng.choice(INDUCTION_LENGTHS))
    # The repeat starts at a random word of the sequence, so the answer's position (absolute or
    # counted from the end) says nothing: only matching the repeated words finds it.
    start = int(rng.integers(length - 1))
    repeat = int(rng.integers(1, length - start))
    words = _distinct(rng, INDUCTION_POOL, length + repeat)
    sequence, fresh = words[:length], words[length:]
    repeated = sequence[start:start + repeat]
    if negative == "stretch":  # one more fresh word, from a child generator: the positives stay the same draws
        answer_slot = _distinct(rng.spawn(1)[0], tuple(w for w in INDUCTION_POOL if w not in words), 1)
        negative_words = sequence[:start] + fresh + answer_slot + sequence[start + repeat + 1:] + repeated
    else:
        negative_words = sequence + fresh
    return ToyPair(
        positive=" ".join(sequence + repeated),
        negative=" ".join(negative_words),
        answers=(sequence[start + repeat],),
        wrong=tuple(w for w in sequence if w != sequence[start + repeat]),
        template_id=0,
        negative_options=INDUCTION_POOL,
        earlier_answers=tuple((length + j, sequence[start + j + 1]) for j in range(repeat - 1)),
    )


_PAIR_MAKERS: dict[str, Callable[[np.random.Generator], ToyPair]] = {
    "ioi": _ioi_pair,
    "greater-than": _greater_than_pair,
    "docstring": _docstring_pair,
    "induction": _induction_pair,
}
_METRICS = {
    "ioi": MetricKind.LOGIT_DIFF,
    "greater-than": MetricKind.PROB_DIFF,
    "docstring": MetricKind.LOGIT_DIFF_MAX,
    "induction": MetricKind.LOGIT_DIFF,
}


def check_negatives(negatives: Mapping[str, str]) -> dict[str, str]:
    """``negatives`` (task → negative) as a dict with the tasks' defaults left out, or a
    `TaskError` naming a task without a choice of negative or a negative its task does not take."""
    for task, negative in negatives.items():
        if task not in TOY_NEGATIVES:
            raise TaskError(f"Task {task!r} has one negative; the tasks with a choice are {', '.join(TOY_NEGATIVES)}.")
        if negative not in TOY_NEGATIVES[task]:
            raise TaskError(f"Unknown {task} negative {negative!r}: use one of {', '.join(TOY_NEGATIVES[task])}.")
    return {task: negative for task, negative in negatives.items() if negative != TOY_NEGATIVES[task][0]}


def toy_pairs(name: str, n_pairs: int, seed: int, negative: str | None = None) -> list[ToyPair]:
    """``n_pairs`` prompt pairs of toy task ``name`` as plain strings, seeded by ``seed`` alone;
    ``negative`` one of the task's `TOY_NEGATIVES` (None: its default; the same positives whatever
    the negative)."""
    rng = np.random.default_rng(seed)
    make_pair = _PAIR_MAKERS[name]
    if negative is not None:
        check_negatives({name: negative})
        make_pair = partial(make_pair, negative=negative)
    return [make_pair(rng) for _ in range(n_pairs)]


def _make_toy_task(name: str, tokenizer, n_pairs: int, seed: int) -> ContrastiveTask:
    pairs = toy_pairs(name, n_pairs, seed, tokenizer_setting(tokenizer, NEGATIVES_MARKER, {}).get(name))
    return task_from_strings(
        tokenizer,
        name,
        positives=[p.positive for p in pairs],
        negatives=[p.negative for p in pairs],
        answers=[p.answers for p in pairs],
        wrong_answers=[p.wrong for p in pairs],
        metric=_METRICS[name],
        template_ids=[p.template_id for p in pairs],
    )


#: ``GENERATORS[name](tokenizer, n_pairs, seed) -> ContrastiveTask`` for the toy vocabulary.
GENERATORS: dict[str, Callable[..., ContrastiveTask]] = {
    name: partial(_make_toy_task, name) for name in _PAIR_MAKERS
}
