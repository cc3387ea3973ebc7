"""The paper's tasks for BPE tokenizers (GPT-2, attn-only-4l, Pythia, ...); docs/method.md §1.

Every generator takes ``(tokenizer, n_pairs, seed)``, draws from a local
``numpy.random.Generator`` (never the global state) and returns a task built by
[`task_from_strings`][saekit.tasks.base.task_from_strings], which checks that answers are single tokens and that
paired prompts have equal token length. Words that must be one token are kept only if the
tokenizer encodes them, with their leading space, as exactly one token; the word lists are
saekit's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from saekit.errors import TaskError
from saekit.tasks.base import ContrastiveTask, MetricKind, task_from_strings

NAMES = (
    "Mary John Alice Bob David Sarah James Emma Michael Laura Daniel Anna Thomas Kate Paul "
    "Lisa Mark Rachel Peter Julia Steven Helen Robert Grace Kevin Amy Brian Lucy Andrew Claire "
    "Jason Rose Eric Sophie Adam Jane Ryan Ruth George Diana Henry Ellen Frank Alex Victor Hannah "
    "Simon Nicole Richard Karen Tom Linda Jack Martin Sam Carol Charles Susan Joseph Emily"
).split()
PLACES = (
    "garden school station market hospital restaurant store park office house library beach "
    "church museum airport river farm kitchen theater hotel"
).split()
OBJECTS = (
    "ring bone book drink computer necklace bag kiss letter basketball snack ticket pen "
    "watch hat cup flower ball key candle"
).split()
EVENTS = (
    "war siege drought famine dynasty reign strike voyage expedition journey trial treaty "
    "campaign rebellion occupation tour"
).split()
WORDS = (
    "load size files last first name data value item text line page user word state model "
    "image table group order color point sound light water stone paper glass metal world "
    "place house river field cloud storm plant seed tree leaf root branch fruit bread salt "
    "sugar milk coffee horse bird fish snake mouse fox wolf bear lion tiger eagle queen king "
    "night day week month year hour minute road bridge tower wall gate door window floor roof "
    "chair desk lamp clock phone radio camera screen button number letter signal message story "
    "song dance game sport team match score prize money price cost market shop bank card coin "
    "gold silver iron steel wood sand snow rain wind fire smoke dust ice heat cold power force "
    "speed weight height depth length width angle shape circle square line edge corner center "
    "range limit count total index key token path root node tree graph list array field"
).split()
FUNCTION_NAMES = "process update check parse build create handle render send load fetch merge".split()

#: Wang et al.'s 15 BABA templates ({B} is the subject S, {A} the indirect object IO).
IOI_BABA_TEMPLATES = (
    "Then, {B} and {A} went to the {PLACE}. {B} gave a {OBJECT} to",
    "Then, {B} and {A} had a lot of fun at the {PLACE}. {B} gave a {OBJECT} to",
    "Then, {B} and {A} were working at the {PLACE}. {B} decided to give a {OBJECT} to",
    "Then, {B} and {A} were thinking about going to the {PLACE}. {B} wanted to give a {OBJECT} to",
    "Then, {B} and {A} had a long argument, and afterwards {B} said to",
    "After {B} and {A} went to the {PLACE}, {B} gave a {OBJECT} to",
    "When {B} and {A} got a {OBJECT} at the {PLACE}, {B} decided to give it to",
    "When {B} and {A} got a {OBJECT} at the {PLACE}, {B} decided to give the {OBJECT} to",
    "While {B} and {A} were working at the {PLACE}, {B} gave a {OBJECT} to",
    "While {B} and {A} were commuting to the {PLACE}, {B} gave a {OBJECT} to",
    "After the lunch, {B} and {A} went to the {PLACE}. {B} gave a {OBJECT} to",
    "Afterwards, {B} and {A} went to the {PLACE}. {B} gave a {OBJECT} to",
    "Then, {B} and {A} had a long argument. Afterwards {B} said to",
    "The {PLACE} {B} and {A} went to had a {OBJECT}. {B} gave it to",
    "Friends {B} and {A} found a {OBJECT} at the {PLACE}. {B} gave it to",
)
#: The ABBA swaps: the two names of the first clause in the other order.
IOI_ABBA_TEMPLATES = tuple(
    t.replace("{B} and {A}", "{A} and {B}", 1) for t in IOI_BABA_TEMPLATES
)
IOI_TEMPLATES = IOI_BABA_TEMPLATES + IOI_ABBA_TEMPLATES

_MAX_DRAWS_PER_PAIR = 20


def single_token_words(tokenizer, words: Sequence[str], minimum: int, what: str) -> list[str]:
    """The words that ``tokenizer`` encodes, with a leading space, as exactly one token."""
    kept = sorted({w for w in words if len(tokenizer.encode(" " + w, add_special_tokens=False)) == 1})
    if len(kept) < minimum:
        raise TaskError(
            f"Only {len(kept)} of saekit's {what} are single tokens (with a leading space) for "
            f"this tokenizer; the task needs {minimum}. Build the task yourself with "
            f"saekit.tasks.task_from_strings and words your tokenizer keeps whole."
        )
    return kept


def _collect(
    tokenizer, name: str, n_pairs: int, draw: Callable[[], tuple], metric: MetricKind
) -> ContrastiveTask:
    """Draw (positive, negative, answers, wrongs, template) tuples until ``n_pairs`` have equal
    token lengths, then build the task."""
    rows: list[tuple] = []
    for _ in range(_MAX_DRAWS_PER_PAIR * n_pairs):
        row = draw()
        if len(tokenizer.encode(row[0])) == len(tokenizer.encode(row[1])):
            rows.append(row)
            if len(rows) == n_pairs:
                break
    else:
        raise TaskError(
            f"Task {name!r}: too few drawn pairs had equal token lengths for this tokenizer "
            f"({len(rows)} of {n_pairs}); build the task with task_from_strings instead."
        )
    positives, negatives, answers, wrongs, templates = zip(*rows)
    return task_from_strings(tokenizer, name, positives, negatives, answers, wrongs, metric, templates)


def ioi(tokenizer, n_pairs: int = 250, seed: int = 0) -> ContrastiveTask:
    """Indirect object identification: "...{S} gave a bone to" → " {IO}" (logit diff IO − S).

    The negative replaces the first mention of S by a third name, so no name repeats and the
    model cannot tell which name is the indirect object.
    """
    rng = np.random.default_rng(seed)
    names = single_token_words(tokenizer, NAMES, 3, "names")
    # Single tokens too, so that a template's prompts line up token by token (mean ablation).
    places = single_token_words(tokenizer, PLACES, 1, "places")
    objects = single_token_words(tokenizer, OBJECTS, 1, "objects")

    def draw() -> tuple:
        template_id = int(rng.integers(len(IOI_TEMPLATES)))
        template = IOI_TEMPLATES[template_id]
        io, s, third = (names[i] for i in rng.choice(len(names), 3, replace=False))
        place, thing = places[rng.integers(len(places))], objects[rng.integers(len(objects))]
        positive = template.format(A=io, B=s, PLACE=place, OBJECT=thing)
        first_s = template.index("{B}")
        negative_template = template[:first_s] + "{C}" + template[first_s + 3 :]
        negative = negative_template.format(A=io, B=s, C=third, PLACE=place, OBJECT=thing)
        return positive, negative, " " + io, " " + s, template_id

    return _collect(tokenizer, "ioi", n_pairs, draw, MetricKind.LOGIT_DIFF)


def _two_digit_tokens_ok(tokenizer) -> bool:
    return all(len(tokenizer.encode(f"{y:02d}", add_special_tokens=False)) == 1 for y in range(100))


def greater_than(tokenizer, n_pairs: int = 250, seed: int = 0) -> ContrastiveTask:
    """"The war lasted from the year 1732 to the year 17" → a year above 32.

    Metric: Σ p(YY' > YY) − Σ p(YY' ≤ YY) over the 100 two-digit tokens. The negative starts in
    year XX01, so no continuation is excluded. Only years whose " XXYY" tokenizes as
    [" XX", "YY"] (and " XX01" as [" XX", "01"]) are used.
    """
    if not _two_digit_tokens_ok(tokenizer):
        raise TaskError(
            "greater-than needs every two-digit string '00'..'99' to be one token; this "
            "tokenizer splits some. Use a GPT-2-style BPE tokenizer."
        )
    rng = np.random.default_rng(seed)

    def splits_as_century_and_year(century: int, year: int) -> bool:
        ids = tokenizer.encode(f" {century}{year:02d}", add_special_tokens=False)
        expected = tokenizer.encode(f" {century}", add_special_tokens=False) + tokenizer.encode(
            f"{year:02d}", add_special_tokens=False
        )
        return ids == expected and len(ids) == 2

    usable = [
        (c, y)
        for c in range(11, 18)
        if splits_as_century_and_year(c, 1)
        for y in range(2, 99)
        if splits_as_century_and_year(c, y)
    ]
    if not usable:
        raise TaskError("No year ' XXYY' tokenizes as [' XX', 'YY'] here; greater-than cannot be built.")
    events = single_token_words(tokenizer, EVENTS, 1, "events")

    def draw() -> tuple:
        century, year = usable[rng.integers(len(usable))]
        event = events[rng.integers(len(events))]
        prefix = f"The {event} lasted from the year {century}"
        positive = f"{prefix}{year:02d} to the year {century}"
        negative = f"{prefix}01 to the year {century}"
        above = [f"{y:02d}" for y in range(year + 1, 100)]
        at_or_below = [f"{y:02d}" for y in range(year + 1)]
        return positive, negative, above, at_or_below, 0

    return _collect(tokenizer, "greater-than", n_pairs, draw, MetricKind.PROB_DIFF)


def docstring(tokenizer, n_pairs: int = 250, seed: int = 0) -> ContrastiveTask:
    """A def with 6 arguments whose docstring documents the 3rd and 4th; answer: the 5th.

    Metric: logit of the right argument − the largest logit of the other five. The negative is
    Heimersheim & Janiak's "random_random" corruption: the def's arguments and the documented
    parameters are replaced by unrelated names, so the docstring no longer points anywhere.
    """
    rng = np.random.default_rng(seed)
    words = single_token_words(tokenizer, WORDS, 14, "argument names")

    def prompt(function: str, args: Sequence[str], documented: Sequence[str], text: Sequence[str]) -> str:
        return (
            f"def {function}(self, {', '.join(args)}):\n"
            f'    """{text[0]} {text[1]} {text[2]}\n\n'
            f"    :param {documented[0]}: {text[3]} {text[4]}\n"
            f"    :param {documented[1]}: {text[5]} {text[6]}\n"
            f"    :param"
        )

    def draw() -> tuple:
        picked = [words[i] for i in rng.choice(len(words), 14, replace=False)]
        args, fresh_args, fresh_documented = picked[:6], picked[6:12], picked[12:14]
        text = [words[i] for i in rng.integers(len(words), size=7)]
        function = FUNCTION_NAMES[rng.integers(len(FUNCTION_NAMES))]
        positive = prompt(function, args, args[2:4], text)
        negative = prompt(function, fresh_args, fresh_documented, text)
        wrong = [" " + a for i, a in enumerate(args) if i != 4]
        return positive, negative, " " + args[4], wrong, 0

    return _collect(tokenizer, "docstring", n_pairs, draw, MetricKind.LOGIT_DIFF_MAX)


def induction(
    tokenizer, n_pairs: int = 250, seed: int = 0, first_half: int = 10
) -> ContrastiveTask:
    """A random word sequence, then its start repeated: predict the word that came next.

    Positive: ``w1 … wL w1 … wm`` → ``w(m+1)``, with m drawn from 2..L-2. Negative: the second
    part is fresh words, so nothing repeats. Metric: logit of ``w(m+1)`` − mean logit of the
    other first-part words.
    """
    if isinstance(first_half, bool) or not isinstance(first_half, int) or first_half < 4:
        raise TaskError(f"induction needs first_half of at least 4 words (a repeat of 2 to L-2), not {first_half!r}.")
    rng = np.random.default_rng(seed)
    words = single_token_words(tokenizer, WORDS, 2 * first_half, "words")

    def draw() -> tuple:
        picked = [words[i] for i in rng.choice(len(words), 2 * first_half, replace=False)]
        sequence, fresh = picked[:first_half], picked[first_half:]
        repeat = int(rng.integers(2, first_half - 1))
        positive = " " + " ".join(sequence + sequence[:repeat])
        negative = " " + " ".join(sequence + fresh[:repeat])
        wrong = [" " + w for i, w in enumerate(sequence) if i != repeat]
        return positive, negative, " " + sequence[repeat], wrong, 0

    return _collect(tokenizer, "induction", n_pairs, draw, MetricKind.LOGIT_DIFF)


GENERATORS: dict[str, Callable[..., ContrastiveTask]] = {
    "ioi": ioi,
    "greater-than": greater_than,
    "docstring": docstring,
    "induction": induction,
}
