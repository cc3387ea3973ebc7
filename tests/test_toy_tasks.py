"""The toy task generators and the toy tokenizer: seeded, well-formed, answers right."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
import torch

from saekit.errors import TaskError
from saekit.tasks import MetricKind, NO_TOKEN, is_toy_tokenizer, make_task, task_from_strings
from saekit.tasks.toy import GENERATORS, INDUCTION_POOL, VOCABULARY, YEARS, toy_pairs
from saekit.zoo.tokenizer import save_toy_tokenizer

N = 60


@pytest.fixture(scope="module")
def toy_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(save_toy_tokenizer(tmp_path_factory.mktemp("toy-tokenizer")))


@pytest.fixture(scope="module")
def tasks(toy_tokenizer):
    return {name: make_task(name, toy_tokenizer, n_pairs=N, seed=3) for name in GENERATORS}


def words(tokenizer, ids: torch.Tensor) -> list[str]:
    """The words of a token row, without BOS, padding and NO_TOKEN slots."""
    ids = ids[ids != NO_TOKEN].tolist()
    return [w for w in tokenizer.convert_ids_to_tokens(ids) if w not in ("<bos>", "<pad>")]


def test_tokenizer_round_trips_and_is_marked_toy(toy_tokenizer, tmp_path):
    assert is_toy_tokenizer(toy_tokenizer)
    assert len(toy_tokenizer) == len(VOCABULARY)
    folder = save_toy_tokenizer(tmp_path / "tok")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["saekit_vocabulary"] == "toy"
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    ids = toy_tokenizer.encode("When Mary and John went to the store", add_special_tokens=False)
    assert toy_tokenizer.convert_ids_to_tokens(ids) == "When Mary and John went to the store".split()
    assert toy_tokenizer.encode("17 32", add_special_tokens=False) == [VOCABULARY.index("17"), VOCABULARY.index("32")]
    assert toy_tokenizer.convert_ids_to_tokens([toy_tokenizer.bos_token_id, toy_tokenizer.pad_token_id]) == ["<bos>", "<pad>"]


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_seeded_and_leave_global_rng_alone(toy_tokenizer, name):
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    first = GENERATORS[name](toy_tokenizer, n_pairs=20, seed=7)
    again = GENERATORS[name](toy_tokenizer, n_pairs=20, seed=7)
    other = GENERATORS[name](toy_tokenizer, n_pairs=20, seed=8)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert random.getstate() == py_state
    assert first.positive_prompts == again.positive_prompts
    assert first.negative_prompts == again.negative_prompts
    assert torch.equal(first.answer_tokens, again.answer_tokens)
    assert first.positive_prompts != other.positive_prompts


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_pairs_are_equal_length_known_words_and_differ(tasks, toy_tokenizer, name):
    task = tasks[name]
    pad = toy_tokenizer.pad_token_id
    assert torch.equal((task.positive_tokens != pad).sum(1), task.lengths)
    assert torch.equal((task.negative_tokens != pad).sum(1), task.lengths)
    for tokens in (task.positive_tokens, task.negative_tokens, task.answer_tokens, task.wrong_tokens):
        assert not (tokens == toy_tokenizer.unk_token_id).any()
    assert (task.positive_tokens != task.negative_tokens).any(1).all()
    same = task.answer_tokens[:, :, None] == task.wrong_tokens[:, None, :]
    assert not (same & (task.answer_tokens[:, :, None] != NO_TOKEN)).any()


def test_ioi_answer_is_the_name_said_once_and_negatives_repeat_nothing(tasks, toy_tokenizer):
    from saekit.tasks.toy import NAMES

    task = tasks["ioi"]
    assert task.metric is MetricKind.LOGIT_DIFF
    io_positions, orders = set(), set()
    for i in range(task.n_pairs):
        pos_names = [w for w in words(toy_tokenizer, task.positive_tokens[i]) if w in NAMES]
        neg_names = [w for w in words(toy_tokenizer, task.negative_tokens[i]) if w in NAMES]
        io, s = words(toy_tokenizer, task.answer_tokens[i]), words(toy_tokenizer, task.wrong_tokens[i])
        assert Counter(pos_names) == Counter({io[0]: 1, s[0]: 2})
        assert len(neg_names) == 3 and len(set(neg_names)) == 3
        assert neg_names[-1] == s[0] and io[0] in neg_names
        orders.add("ABBA" if pos_names[0] == io[0] else "BABA")
        io_positions.add(words(toy_tokenizer, task.positive_tokens[i]).index(io[0]))
    assert orders == {"ABBA", "BABA"}
    assert len(io_positions) >= 4, "the IO name must not sit at one fixed position"
    assert len(set(task.template_ids.tolist())) >= 4


def test_ioi_giver_negative_keeps_the_first_clause_and_reaches_make_task_through_the_tokenizer(toy_tokenizer, tmp_path):
    """A tokenizer saved with the giver negative makes `make_task` build it: the positive's words
    with only the giver replaced, by a name not in the first clause; the positives as the paper's."""
    from transformers import AutoTokenizer

    from saekit.tasks.toy import NAMES
    from saekit.zoo.tokenizer import build_toy_tokenizer

    folder = save_toy_tokenizer(tmp_path / "giver", build_toy_tokenizer(negatives={"ioi": "giver"}))
    task = make_task("ioi", AutoTokenizer.from_pretrained(folder), n_pairs=N, seed=3)
    paper = make_task("ioi", toy_tokenizer, n_pairs=N, seed=3)
    assert torch.equal(task.positive_tokens, paper.positive_tokens) and not torch.equal(task.negative_tokens, paper.negative_tokens)
    for i in range(task.n_pairs):
        positive, negative = words(toy_tokenizer, task.positive_tokens[i]), words(toy_tokenizer, task.negative_tokens[i])
        io, s = words(toy_tokenizer, task.answer_tokens[i])[0], words(toy_tokenizer, task.wrong_tokens[i])[0]
        changed = [j for j, (a, b) in enumerate(zip(positive, negative, strict=True)) if a != b]
        assert len(changed) == 1 and positive[changed[0]] == s and negative[changed[0]] not in (io, s)
        assert [w for w in negative if w in NAMES][:2] == [w for w in positive if w in NAMES][:2]
    assert all(p.negative_options == (*p.answers, *p.wrong) for p in toy_pairs("ioi", 10, 0, "giver"))
    with pytest.raises(TaskError, match="Unknown ioi negative 'first'"):
        build_toy_tokenizer(negatives={"ioi": "first"})


def test_greater_than_answers_are_the_later_years(tasks, toy_tokenizer):
    task = tasks["greater-than"]
    assert task.metric is MetricKind.PROB_DIFF
    year_ids = set(toy_tokenizer.convert_tokens_to_ids(list(YEARS)))
    start_positions, distances_to_end, with_second_number = set(), set(), 0
    for i in range(task.n_pairs):
        pos, neg = words(toy_tokenizer, task.positive_tokens[i]), words(toy_tokenizer, task.negative_tokens[i])
        changed = [j for j, (a, b) in enumerate(zip(pos, neg)) if a != b]
        assert len(changed) == 1 and neg[changed[0]] == "01"
        where = changed[0]
        start = int(pos[where])
        assert pos[-1] == neg[-1] == pos[where - 1] and pos[where - 2] == "year"  # "year CC YY ... year CC"
        start_positions.add(where)
        distances_to_end.add(len(pos) - where)
        with_second_number += sum(w in YEARS for w in pos) > 3
        answers = {int(w) for w in words(toy_tokenizer, task.answer_tokens[i])}
        wrong = {int(w) for w in words(toy_tokenizer, task.wrong_tokens[i])}
        assert answers == set(range(start + 1, 100)) and wrong == set(range(start + 1))
        assert set(task.answer_tokens[i].tolist() + task.wrong_tokens[i].tolist()) - {NO_TOKEN} == year_ids
    # Neither the start year's position nor its distance from the end finds it, and some
    # prompts hold a second two-digit number that is not the start year.
    assert len(start_positions) >= 3 and len(distances_to_end) >= 3
    assert 0 < with_second_number < task.n_pairs


def test_docstring_answer_is_the_argument_after_the_documented_ones(tasks, toy_tokenizer):
    task = tasks["docstring"]
    assert task.metric is MetricKind.LOGIT_DIFF_MAX
    for i in range(task.n_pairs):
        pos, neg = words(toy_tokenizer, task.positive_tokens[i]), words(toy_tokenizer, task.negative_tokens[i])
        args = pos[pos.index("(") + 3 : pos.index(")") : 2]
        documented = [pos[j + 1] for j, w in enumerate(pos[:-1]) if w == ":param"]
        assert len(args) == 6 and pos[-1] == ":param"
        answer = args[args.index(documented[-1]) + 1]
        assert documented == args[args.index(documented[0]) : args.index(documented[0]) + 2]
        assert words(toy_tokenizer, task.answer_tokens[i]) == [answer]
        assert sorted(words(toy_tokenizer, task.wrong_tokens[i])) == sorted(set(args) - {answer})
        neg_args = neg[neg.index("(") + 3 : neg.index(")") : 2]
        neg_documented = [neg[j + 1] for j, w in enumerate(neg[:-1]) if w == ":param"]
        assert not set(neg_args) & set(args) and not set(neg_documented) & (set(neg_args) | set(args))


def test_induction_answer_follows_the_first_occurrence(tasks, toy_tokenizer):
    task = tasks["induction"]
    assert task.metric is MetricKind.LOGIT_DIFF
    starts = set()
    for i in range(task.n_pairs):
        pos, neg = words(toy_tokenizer, task.positive_tokens[i]), words(toy_tokenizer, task.negative_tokens[i])
        length = next(j for j, (a, b) in enumerate(zip(pos, neg)) if a != b)  # where the repeat starts
        first_half, repeat = pos[:length], pos[length:]
        assert len(set(first_half)) == length and set(pos) <= set(INDUCTION_POOL)
        start = first_half.index(repeat[0])
        assert first_half[start : start + len(repeat)] == repeat and start + len(repeat) < length
        assert words(toy_tokenizer, task.answer_tokens[i]) == [first_half[start + len(repeat)]]
        assert sorted(words(toy_tokenizer, task.wrong_tokens[i])) == sorted(set(first_half) - {first_half[start + len(repeat)]})
        assert neg[:length] == first_half and not set(neg[length:]) & set(first_half) and neg.count(neg[-1]) == 1
        starts.add(start)
    assert len(starts) >= 4, "the repeat must not always start at the same word"


def test_induction_stretch_negative_replaces_the_first_occurrence_and_the_answer(tasks, toy_tokenizer, tmp_path):
    """A tokenizer saved with induction's "stretch" negative makes `make_task` build it: the
    positives as the default's; the negative is the positive with the repeated words' first
    occurrence and the answer after them replaced by fresh words, the repeat kept, nothing
    repeating; the default's negative keeps the sequence."""
    from transformers import AutoTokenizer

    from saekit.zoo.tokenizer import build_toy_tokenizer

    folder = save_toy_tokenizer(tmp_path / "stretch", build_toy_tokenizer(negatives={"induction": "stretch"}))
    task, default = make_task("induction", AutoTokenizer.from_pretrained(folder), n_pairs=N, seed=3), tasks["induction"]
    assert torch.equal(task.positive_tokens, default.positive_tokens)
    for i in range(task.n_pairs):
        pos, neg = words(toy_tokenizer, task.positive_tokens[i]), words(toy_tokenizer, task.negative_tokens[i])
        answer = words(toy_tokenizer, task.answer_tokens[i])[0]
        length = len(words(toy_tokenizer, default.positive_tokens[i])) - len(
            [j for j, (a, b) in enumerate(zip(pos, words(toy_tokenizer, default.negative_tokens[i]))) if a != b])
        repeat = pos[length:]
        changed = [j for j, (a, b) in enumerate(zip(pos, neg, strict=True)) if a != b]
        start = pos.index(repeat[0])
        assert changed == list(range(start, start + len(repeat) + 1)) and pos[changed[-1]] == answer
        assert neg[length:] == repeat and len(set(neg)) == len(neg) and set(neg) <= set(INDUCTION_POOL)
    assert all(p.negative_options == INDUCTION_POOL for p in toy_pairs("induction", 10, 0, "stretch"))
    with pytest.raises(TaskError, match="Task 'docstring' has one negative"):
        toy_pairs("docstring", 2, 0, "stretch")


def test_negative_options_cover_what_a_negative_could_continue_with():
    ioi = toy_pairs("ioi", 10, 0)
    assert all(set(p.negative_options) == set(p.negative.split()) & set(p.negative_options) for p in ioi)
    assert all(len(set(p.negative_options)) == 3 for p in ioi)
    docstring = toy_pairs("docstring", 10, 0)
    assert all(set(p.negative_options) <= set(p.negative.split()) and not set(p.negative_options) & set(p.wrong + p.answers) for p in docstring)


def test_words_outside_the_toy_vocabulary_are_refused_by_name(toy_tokenizer):
    """A vocabulary tokenizer maps them all to <unk>, which would make different words alike."""
    with pytest.raises(TaskError, match="does not know 'store,'"):
        task_from_strings(toy_tokenizer, "t", ["Mary went to the store, John"], ["Mary went to the park John"],
                          [" Mary"], [" John"])
    with pytest.raises(TaskError, match="does not know 'Zelda'"):
        task_from_strings(toy_tokenizer, "t", ["Mary and John"], ["Mary and Tom"], [" Zelda"], [" John"])
