"""A small generic synthetic language, the bulk of a test-bed model's training text.

A test-bed trained on nothing but its tasks rewards every head for telling a task's positives
from its negatives (``shared/reference``'s testbed diagnosis). Here most training tokens are
*documents* of a generic language in which the behaviours the tasks use have jobs of their
own, as they do in natural text:

- **narrative** sentences about a few recurring names, places and objects (duplicate tokens,
  previous-token context, "X gave the Y to Z");
- **number** sentences with years in increasing order (number order);
- **code** blocks: ``def`` lines whose arguments recur in assignments, and ``def`` lines whose
  docstring documents a run of their arguments in order (what the docstring task asks for);
- **repeats** of an earlier stretch of the same document (copying, induction), and whole
  **copy documents**: a random word sequence, then stretches of it from random starts until the
  document is full, where a word inside a stretch is predictable by induction alone;
- instances of the four tasks (`saekit.tasks.toy.toy_pairs`) with their answer, as one
  more kind of sentence.

Words are drawn from Zipfian distributions (a fixed random rank per word), and each document
first draws a small topic (a few names, places, objects, identifiers) that most of its
sentences reuse, so text is bursty. Every word is one token of the test-bed vocabulary.
Generation uses a local ``numpy.random.Generator`` and never touches the global random state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from saekit.errors import SaekitError
from saekit.tasks import TASK_NAMES
from saekit.tasks.toy import (
    ARGUMENT_NAMES,
    CENTURIES,
    DESCRIPTION_WORDS,
    EVENTS,
    FUNCTION_NAMES,
    INDUCTION_POOL,
    NAMES,
    OBJECTS,
    PLACES,
    VOCABULARY,
    YEARS,
    _docstring_prompt,
    toy_pairs,
)

VERBS = ("saw", "met", "liked", "found", "took", "left", "called", "helped", "visited", "told", "knew", "followed")
CODE_WORDS = ("=", "+", "-", "return", "if", "else", "for", "in", "print", "None", "True")
CONNECTIVES = ("then", "later", "so", "but", "after", "that", "also", "again", "there", "it")
NUMBER_WORDS = ("came", "the", "year")

#: The test-bed vocabulary: the toy tasks' vocabulary (same ids) followed by the generic words
#: it lacks, so every task prompt tokenizes exactly as on the toy models.
TESTBED_VOCABULARY: tuple[str, ...] = VOCABULARY + tuple(
    sorted(set(VERBS + CODE_WORDS + CONNECTIVES + NUMBER_WORDS) - set(VOCABULARY))
)

#: Zipf exponent of word frequencies within a category.
ZIPF_EXPONENT = 1.1
#: Probability that a sentence takes a word from the document's topic rather than the lexicon.
TOPIC_STICKINESS = 0.8
#: Share of documents that are copy documents.
COPY_DOCUMENTS = 0.25
#: Length range of a copy document's sequence.
COPY_LENGTHS = (4, 12)
#: Relative frequency of each kind of sentence in a document.
SENTENCE_KINDS: dict[str, float] = {
    "narrative": 0.3, "numbers": 0.15, "code": 0.15, "docstring": 0.15, "repeat": 0.2, "task": 0.2,
}


class _Lexicon:
    """One category of words with Zipfian frequencies (rank fixed by ``rank_seed``)."""

    def __init__(self, words: tuple[str, ...], rank_seed: int) -> None:
        order = np.random.default_rng(rank_seed).permutation(len(words))
        self.words = tuple(words[i] for i in order)
        weights = 1.0 / np.arange(1, len(words) + 1) ** ZIPF_EXPONENT
        self.probabilities = weights / weights.sum()

    def draw(self, rng: np.random.Generator, k: int = 1) -> list[str]:
        """``k`` distinct words, frequent ones more often."""
        return [self.words[i] for i in rng.choice(len(self.words), size=k, replace=False, p=self.probabilities)]


_LEXICONS = {
    name: _Lexicon(words, rank_seed)
    for rank_seed, (name, words) in enumerate({
        "name": NAMES, "place": PLACES, "object": OBJECTS, "verb": VERBS, "event": EVENTS,
        "function": FUNCTION_NAMES, "argument": ARGUMENT_NAMES, "description": DESCRIPTION_WORDS,
        "connective": CONNECTIVES,
    }.items())
}


@dataclass
class _Topic:
    """What one document is about: a few words of each category that its sentences reuse."""

    words: dict[str, list[str]]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Topic:
        sizes = {"name": 4, "place": 2, "object": 3, "verb": 3, "event": 1, "function": 2, "argument": 6,
                 "description": 3, "connective": 3}
        return cls({name: _LEXICONS[name].draw(rng, k) for name, k in sizes.items()})

    def pick(self, rng: np.random.Generator, category: str, k: int = 1) -> list[str]:
        """``k`` distinct words of ``category``, mostly from the topic."""
        topic = self.words[category]
        if k <= len(topic) and rng.random() < TOPIC_STICKINESS:
            return [topic[i] for i in rng.choice(len(topic), size=k, replace=False)]
        return _LEXICONS[category].draw(rng, k)


def _narrative(rng: np.random.Generator, topic: _Topic, words: list[str]) -> list[str]:
    first, second = topic.pick(rng, "name", 2)
    place, obj, verb = topic.pick(rng, "place")[0], topic.pick(rng, "object")[0], topic.pick(rng, "verb")[0]
    then = topic.pick(rng, "connective")[0]
    forms = (
        f"{first} went to the {place} .",
        f"{first} {verb} {second} at the {place} .",
        f"{first} and {second} {verb} a {obj} .",
        f"{then} {first} gave the {obj} to {second} .",
        f"at the {place} , {second} {verb} the {obj} .",
    )
    return forms[rng.integers(len(forms))].split()


def _numbers(rng: np.random.Generator, topic: _Topic, words: list[str]) -> list[str]:
    century = CENTURIES[rng.integers(len(CENTURIES))]
    years = sorted(rng.choice(100, size=int(rng.integers(2, 5)), replace=False))
    event = topic.pick(rng, "event")[0]
    listed = " , ".join(f"{century} {YEARS[y]}" for y in years)
    return f"the {event} came in the year {listed} .".split()


def _code(rng: np.random.Generator, topic: _Topic, words: list[str]) -> list[str]:
    function = topic.pick(rng, "function")[0]
    args = topic.pick(rng, "argument", int(rng.integers(2, 5)))
    a, b = args[0], args[-1]
    body = (f"{a} = {b} + {a}", f"if {a} : return {b}", f"for {a} in {b} : print ( {a} )", f"return {b}")
    return f"def {function} ( self , {' , '.join(args)} ) : {body[rng.integers(len(body))]}".split()


def _docstring(rng: np.random.Generator, topic: _Topic, words: list[str]) -> list[str]:
    """A ``def`` whose docstring documents a run of its arguments in signature order, as the
    docstring task's prompts do: the next ``:param`` name is the argument after the last one."""
    function = topic.pick(rng, "function")[0]
    args = topic.pick(rng, "argument", int(rng.integers(3, 6)))
    first = int(rng.integers(len(args) - 1))
    param_words = [word for _ in args[first:] for word in topic.pick(rng, "description", 2)]
    return _docstring_prompt(function, args, args[first:], [], param_words).split()[:-1]  # no trailing :param


def _repeat(rng: np.random.Generator, topic: _Topic, words: list[str]) -> list[str]:
    """A copy of an earlier stretch of the document (3 to 10 words), or a narrative at its start."""
    if len(words) < 4:
        return _narrative(rng, topic, words)
    length = int(rng.integers(3, min(10, len(words)) + 1))
    start = int(rng.integers(len(words) - length + 1))
    return words[start:start + length]


def _task(rng: np.random.Generator, topic: _Topic, words: list[str]) -> list[str]:
    """A positive of one of the four tasks followed by (one of) its answer(s)."""
    name = TASK_NAMES[rng.integers(len(TASK_NAMES))]
    pair = toy_pairs(name, 1, int(rng.integers(2**31)))[0]
    answer = pair.answers[rng.integers(len(pair.answers))]
    return [*pair.positive.split(), answer, "."]


_SENTENCE_MAKERS: dict[str, Callable[[np.random.Generator, _Topic, list[str]], list[str]]] = {
    "narrative": _narrative, "numbers": _numbers, "code": _code, "docstring": _docstring, "repeat": _repeat,
    "task": _task,
}


def copy_document(rng: np.random.Generator, n_words: int) -> list[str]:
    """A random sequence of distinct content words, then stretches of it (each from a random
    start, 2 words or more) until ``n_words`` words.

    The stretches start anywhere, so neither a period nor a position says what comes next: only
    finding the current word's earlier occurrence and copying its successor (induction) does.
    A whole sequence repeated periodically would also teach a shortcut, the period.
    """
    sequence = [INDUCTION_POOL[i] for i in rng.choice(len(INDUCTION_POOL), size=int(rng.integers(*COPY_LENGTHS)), replace=False)]
    words = list(sequence)
    while len(words) < n_words:
        start = int(rng.integers(len(sequence) - 1))
        words += sequence[start:start + int(rng.integers(2, len(sequence) - start + 1))]
    return words[:n_words]


def check_sentence_kinds(sentence_kinds: Mapping[str, float]) -> None:
    """Refuse relative frequencies of sentence kinds that name an unknown kind, are negative, or
    leave no kind to draw."""
    unknown = set(sentence_kinds) - set(SENTENCE_KINDS)
    if unknown:
        raise SaekitError(f"Unknown sentence kinds {sorted(unknown)}; the kinds are {list(SENTENCE_KINDS)}.")
    if any(weight < 0 for weight in sentence_kinds.values()):
        raise SaekitError(f"Sentence kinds' relative frequencies must be 0 or more, got {dict(sentence_kinds)}.")
    if sum({**SENTENCE_KINDS, **sentence_kinds}.values()) <= 0:
        raise SaekitError("At least one sentence kind needs a relative frequency above 0.")


def generic_document(rng: np.random.Generator, n_words: int, sentence_kinds: Mapping[str, float] = SENTENCE_KINDS) -> list[str]:
    """One document of exactly ``n_words`` words: a copy document, or sentences of mixed kinds on
    one topic, drawn with the relative frequencies of ``sentence_kinds`` (`SENTENCE_KINDS` for
    the kinds it does not name)."""
    if rng.random() < COPY_DOCUMENTS:
        return copy_document(rng, n_words)
    topic = _Topic.draw(rng)
    frequencies = {**SENTENCE_KINDS, **sentence_kinds}
    kinds = list(frequencies)
    weights = np.array([frequencies[k] for k in kinds])
    words: list[str] = []
    while len(words) < n_words:
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        words += _SENTENCE_MAKERS[kind](rng, topic, words)
    return words[:n_words]


def generic_documents(
    n_documents: int, n_words: int, seed: int, sentence_kinds: Mapping[str, float] = SENTENCE_KINDS
) -> list[list[str]]:
    """``n_documents`` documents of ``n_words`` words (`generic_document`), seeded by ``seed`` alone."""
    rng = np.random.default_rng(seed)
    return [generic_document(rng, n_words, sentence_kinds) for _ in range(n_documents)]
