"""The GPT-2-scale task generators with the real GPT-2 tokenizer, and the ground-truth head sets."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from saekit.errors import HeadSetError, TaskError
from saekit.tasks import MetricKind, make_task, task_from_strings
from saekit.tasks.bpe import GENERATORS, IOI_TEMPLATES, NAMES, single_token_words
from saekit.tasks.ground_truth import PAPER_HEADS, ground_truth_heads, heads_to_mask

N_PAIRS = 40


@pytest.fixture(scope="module")
def tasks(gpt2_tokenizer):
    return {name: make_task(name, gpt2_tokenizer, n_pairs=N_PAIRS, seed=3) for name in GENERATORS}


def decode(tokenizer, ids) -> list[str]:
    return [tokenizer.decode([i]) for i in ids.tolist() if i >= 0]


def test_every_task_has_equal_length_pairs_and_bos(tasks, gpt2_tokenizer):
    for task in tasks.values():
        assert task.n_pairs == N_PAIRS
        assert (task.positive_tokens[:, 0] == gpt2_tokenizer.bos_token_id).all()
        for i, length in enumerate(task.lengths.tolist()):
            for side, prompts in (("positive", task.positive_prompts), ("negative", task.negative_prompts)):
                encoded = gpt2_tokenizer.encode(prompts[i])
                assert len(encoded) + 1 == length
                assert task.tokens(side)[i, 1:length].tolist() == encoded


def test_ioi_names_and_answers(tasks, gpt2_tokenizer):
    task = tasks["ioi"]
    assert task.metric is MetricKind.LOGIT_DIFF
    assert len(IOI_TEMPLATES) == 30 and len(set(task.template_ids.tolist())) > 5
    for i in range(task.n_pairs):
        io, s = decode(gpt2_tokenizer, task.answer_tokens[i]) + decode(gpt2_tokenizer, task.wrong_tokens[i])
        positive, negative = task.positive_prompts[i], task.negative_prompts[i]
        assert positive.count(io) == 1 and positive.count(s) == 2  # IO once, S twice
        names_in_negative = [w for w in re.findall(r"[A-Z][a-z]+", negative) if w in NAMES]
        assert len(names_in_negative) == len(set(names_in_negative)) == 3  # no name repeats
        assert negative.endswith(positive[positive.rindex(s):])  # second S kept
    for name in single_token_words(gpt2_tokenizer, NAMES, 3, "names"):
        assert len(gpt2_tokenizer.encode(" " + name)) == 1


def test_greater_than_years_split_and_answers_are_the_later_years(tasks, gpt2_tokenizer):
    task = tasks["greater-than"]
    assert task.metric is MetricKind.PROB_DIFF
    for i in range(task.n_pairs):
        positive, negative = task.positive_prompts[i], task.negative_prompts[i]
        century, year = re.search(r"year (\d\d)(\d\d) to", positive).groups()
        assert gpt2_tokenizer.tokenize(f" {century}{year}") == [f"Ġ{century}", year]
        assert re.search(r"year (\d\d)01 to", negative).group(1) == century
        above = decode(gpt2_tokenizer, task.answer_tokens[i])
        at_or_below = decode(gpt2_tokenizer, task.wrong_tokens[i])
        assert above == [f"{y:02d}" for y in range(int(year) + 1, 100)]
        assert at_or_below == [f"{y:02d}" for y in range(int(year) + 1)]


def test_docstring_answer_is_the_next_undocumented_argument(tasks, gpt2_tokenizer):
    task = tasks["docstring"]
    assert task.metric is MetricKind.LOGIT_DIFF_MAX
    for i in range(task.n_pairs):
        positive, negative = task.positive_prompts[i], task.negative_prompts[i]
        args = re.search(r"\(self, (.*)\):", positive).group(1).split(", ")
        documented = re.findall(r":param (\w+):", positive)
        assert len(args) == 6 and documented == args[2:4]
        assert decode(gpt2_tokenizer, task.answer_tokens[i]) == [" " + args[4]]
        assert decode(gpt2_tokenizer, task.wrong_tokens[i]) == [" " + a for j, a in enumerate(args) if j != 4]
        negative_args = re.search(r"\(self, (.*)\):", negative).group(1).split(", ")
        negative_documented = re.findall(r":param (\w+):", negative)
        assert not set(negative_args + negative_documented) & set(args)  # random_random
        assert not set(negative_documented) & set(negative_args)


def test_induction_answer_follows_the_first_occurrence(tasks, gpt2_tokenizer):
    task = tasks["induction"]
    for i in range(task.n_pairs):
        words = task.positive_prompts[i].split()
        first, repeat = words[:10], words[10:]
        assert repeat == first[: len(repeat)]
        answer = decode(gpt2_tokenizer, task.answer_tokens[i])
        assert answer == [" " + first[len(repeat)]]
        negative_tail = task.negative_prompts[i].split()[10:]
        assert len(negative_tail) == len(repeat) and not set(negative_tail) & set(first)


@pytest.mark.parametrize("first_half", [3, 2.5, True])
def test_induction_refuses_a_first_part_too_short_to_repeat(gpt2_tokenizer, first_half):
    with pytest.raises(TaskError, match="first_half of at least 4"):
        GENERATORS["induction"](gpt2_tokenizer, n_pairs=2, first_half=first_half)


def test_generation_is_seeded_and_leaves_the_global_rng_alone(gpt2_tokenizer):
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    first = make_task("ioi", gpt2_tokenizer, n_pairs=10, seed=7)
    again = make_task("ioi", gpt2_tokenizer, n_pairs=10, seed=7)
    other = make_task("ioi", gpt2_tokenizer, n_pairs=10, seed=8)
    assert first.positive_prompts == again.positive_prompts != other.positive_prompts
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()


class _CharacterTokenizer:
    """Every character is a token: no name survives as a single token."""

    bos_token_id = eos_token_id = pad_token_id = 0

    def encode(self, text, add_special_tokens=True):
        return [ord(c) for c in text]


def test_a_tokenizer_that_splits_every_name_is_refused():
    with pytest.raises(TaskError, match="single tokens.*task_from_strings"):
        GENERATORS["ioi"](_CharacterTokenizer(), n_pairs=2, seed=0)
    with pytest.raises(TaskError, match="two-digit"):
        GENERATORS["greater-than"](_CharacterTokenizer(), n_pairs=2, seed=0)


def test_bad_custom_tasks_are_refused(gpt2_tokenizer):
    with pytest.raises(TaskError, match="empty"):
        task_from_strings(gpt2_tokenizer, "t", [], [], [], [])
    with pytest.raises(TaskError, match="equal token lengths"):
        task_from_strings(gpt2_tokenizer, "t", ["Hello world"], ["Hi there big world"], [" a"], [" b"])
    with pytest.raises(TaskError, match="single tokens.*leading space"):
        task_from_strings(gpt2_tokenizer, "t", ["Hello"], ["Hi"], [" Maximiliana"], [" b"])
    with pytest.raises(TaskError, match="pair 1: the negative is the same tokens as the positive"):
        task_from_strings(gpt2_tokenizer, "t", ["Hello", "Hi"], ["Hey", "Hi"], [" a", " a"], [" b", " b"])
    with pytest.raises(TaskError, match="Unknown task 'iol'"):
        make_task("iol", gpt2_tokenizer)


# ----- ground truth ---------------------------------------------------------------------------


def test_paper_head_sets():
    ioi = ground_truth_heads("gpt2-small", "ioi")
    assert len(ioi) == 26 and {(9, 9), (10, 0), (9, 6), (9, 0), (2, 2), (4, 11)} <= ioi
    assert ground_truth_heads("gpt2-small", "ioi", "authors") == (ioi - {(9, 0)}) | {(11, 3)}
    greater_than = ground_truth_heads("gpt2-small", "greater-than")
    assert greater_than == {(0, 1), (0, 3), (0, 5), (5, 5), (6, 1), (6, 9), (7, 10), (8, 11), (9, 1)}
    docstring = ground_truth_heads("attn-only-4l", "docstring")
    assert docstring == {(0, 5), (1, 2), (1, 4), (2, 0), (3, 0), (3, 6)}
    assert ground_truth_heads("attn-only-4l", "docstring", "authors") == (docstring - {(1, 2)}) | {(1, 0)}
    assert all(0 <= layer < 12 and 0 <= head < 12 for heads in PAPER_HEADS.values() for layer, head in heads)


def test_unknown_ground_truth_names_what_exists():
    with pytest.raises(TaskError, match="gpt2-small/ioi"):
        ground_truth_heads("gpt2-small", "docstring")
    with pytest.raises(TaskError, match="variant"):
        ground_truth_heads("gpt2-small", "ioi", variant="mine")


def test_toy_ground_truth_is_read_from_its_json(tmp_path, monkeypatch):
    import saekit.zoo

    (tmp_path / "toy-x").mkdir()
    truth = {"model": "toy-x", "rule": "r", "tasks": {"ioi": {"heads": [[1, 2], [3, 0]]}}}
    (tmp_path / "toy-x" / "ground_truth.json").write_text(json.dumps(truth))
    monkeypatch.setattr(saekit.zoo, "toy_model_names", lambda: ["toy-x"])
    monkeypatch.setattr(saekit.zoo, "toy_model_dir", lambda name: tmp_path / name)
    assert ground_truth_heads("toy-x", "ioi") == {(1, 2), (3, 0)}
    with pytest.raises(TaskError, match="has ioi"):
        ground_truth_heads("toy-x", "docstring")


def test_heads_to_mask():
    mask = heads_to_mask({(0, 1), "2.3"}, n_layers=3, n_heads=4)
    assert mask.shape == (3, 4) and mask.sum() == 2 and mask[0, 1] and mask[2, 3]
    with pytest.raises(HeadSetError, match="outside a model of 3 layers"):
        heads_to_mask({(3, 0)}, 3, 4)
    with pytest.raises(HeadSetError, match="outside a model of 3 layers"):
        heads_to_mask({"9.9"}, 3, 4)


@pytest.mark.parametrize("item", ["12", (1.9, 1), (True, 1), (0, 1, 2), "a.b"])
def test_heads_to_mask_refuses_what_is_not_a_head(item):
    """Read digit by digit, "12" would be head (1, 2) and (1.9, 1) head (1, 1): refused instead."""
    with pytest.raises(HeadSetError, match="Cannot read head"):
        heads_to_mask([item], 3, 4)
