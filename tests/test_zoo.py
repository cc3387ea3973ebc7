"""The shipped toy model toy-4l: files, TransformerLens equivalence, ground truth, training, CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from saekit.errors import ModelNotFoundError
from saekit.models import load_model
from saekit.tasks import TASK_NAMES, make_task, task_from_strings
from saekit.tasks.toy import VOCABULARY
from saekit.zoo import load_toy_folder, toy_model_dir
from saekit.zoo.evaluate import chance_metric, evaluate_toy_model, shuffled_chance_metric
from saekit.zoo.ground_truth import circuit_mask, task_ground_truth, write_ground_truth
from saekit.zoo.model import AttnOnlyTransformer, ToyModelConfig, load_toy_module
from saekit.zoo.tokenizer import build_toy_tokenizer
from saekit.zoo.testbed import recorded_config
from saekit.zoo.train import TrainingConfig, save_toy_model, train_toy_model

ZOO = toy_model_dir("toy-4l")
GROUND_TRUTH = json.loads((ZOO / "ground_truth.json").read_text())

#: A model small enough to train a few dozen steps in a test.
TINY = TrainingConfig(
    steps=30, pairs_per_task=dict.fromkeys(TASK_NAMES, 4), induction_warmup_steps=10, induction_warmup_batch=4,
    induction_two_back=2, induction_replay=2, head_sparsity_ramp=5, warmup_steps=5, eval_every=0,
    model=ToyModelConfig(n_layers=2, n_heads=2, d_model=16, d_head=8, d_vocab=len(VOCABULARY)),
)


@pytest.fixture(scope="module")
def toy_model():
    from saekit import load_model

    return load_model("toy-4l")


def test_shipped_files_are_a_few_megabytes_of_safetensors_and_json():
    files = {str(p.relative_to(ZOO)) for p in ZOO.rglob("*") if p.is_file()}
    assert files == {
        "config.json", "model.safetensors", "ground_truth.json", "MODEL_CARD.md",
        "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json",
    }
    assert sum((ZOO / f).stat().st_size for f in files) < 3_000_000
    config = json.loads((ZOO / "config.json").read_text())
    tl = config["tl_config"]
    assert (tl["n_layers"], tl["n_heads"], tl["attn_only"], tl["normalization_type"]) == (4, 8, True, "LN")
    assert tl["d_vocab"] == len(VOCABULARY)
    assert config["training"] == TrainingConfig().to_dict()


def test_torch_module_and_transformerlens_give_the_same_logits(toy_model):
    module = load_toy_module(ZOO)
    for name in TASK_NAMES:
        tokens = make_task(name, toy_model, n_pairs=8, seed=5).positive_tokens
        with torch.no_grad():
            assert torch.allclose(module(tokens), toy_model(tokens), atol=1e-4), name


def assert_does_the_task(score) -> None:
    """Accuracy at least 0.95 on positives; negatives far closer to chance than positives are."""
    assert score.pos_accuracy >= 0.95
    assert abs(score.neg_metric - score.chance_metric) < 0.35 * abs(score.pos_metric - score.chance_metric)


@pytest.fixture(scope="module")
def shipped_scores(toy_model):
    return evaluate_toy_model(toy_model, toy_model.tokenizer, n_pairs=100, seed=1)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_shipped_model_does_its_tasks(shipped_scores, name):
    assert_does_the_task(shipped_scores[name])


def test_ground_truth_matches_its_rule_and_circuits_differ():
    from saekit.tasks.ground_truth import ground_truth_heads

    circuits = set()
    for name in TASK_NAMES:
        entry = GROUND_TRUTH["tasks"][name]
        heads = frozenset(map(tuple, entry["heads"]))
        assert ground_truth_heads("toy-4l", name) == heads
        mask = circuit_mask(torch.tensor(entry["effects"]), entry["clean_metric"], entry["corrupted_metric"])
        assert frozenset(map(tuple, torch.nonzero(mask).tolist())) == heads
        circuits.add(heads)
    assert len(circuits) == len(TASK_NAMES)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_ground_truth_circuit_size(name):
    assert 2 <= len(GROUND_TRUTH["tasks"][name]["heads"]) <= 0.6 * 32


@pytest.mark.parametrize("name", ["ioi"])
def test_ground_truth_recomputes_from_the_shipped_weights(toy_model, name):
    stored = GROUND_TRUTH["tasks"][name]
    fresh = task_ground_truth(toy_model, name)
    assert fresh["heads"] == stored["heads"]
    assert np.allclose(fresh["effects"], stored["effects"], atol=1e-4)
    assert fresh["clean_metric"] == pytest.approx(stored["clean_metric"], abs=1e-4)
    assert fresh["corrupted_metric"] == pytest.approx(stored["corrupted_metric"], abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["greater-than", "docstring", "induction"])
def test_ground_truth_recomputes_from_the_shipped_weights_slow_tasks(toy_model, name):
    test_ground_truth_recomputes_from_the_shipped_weights(toy_model, name)


def test_ground_truth_of_a_model_outside_the_zoo_needs_a_file_to_write(monkeypatch):
    def compute(name):
        raise AssertionError("computed before the destination was checked")

    monkeypatch.setattr("saekit.zoo.ground_truth.compute_ground_truth", compute)
    with pytest.raises(ModelNotFoundError, match="--out"):
        write_ground_truth("gpt2-small")


def test_circuit_rule_counts_effects_in_both_directions():
    effects = torch.tensor([[0.5, -0.5, 0.049], [-0.05, 0.0, 2.0]])
    mask = circuit_mask(effects, clean_metric=3.0, corrupted_metric=2.5)  # threshold 0.05
    assert mask.tolist() == [[True, True, False], [True, False, True]]


def test_chance_metric_is_uniform_over_candidates(gpt2_tokenizer):
    years = [f"{y:02d}" for y in range(100)]
    task = task_from_strings(
        gpt2_tokenizer, "gt", [" a b"], [" a c"], [years[41:]], [years[:41]], metric="prob_diff"
    )
    assert float(chance_metric(task)) == pytest.approx((59 - 41) / 100)
    ioi = task_from_strings(gpt2_tokenizer, "ioi", [" a b"], [" a c"], [" Mary"], [" John"])
    assert float(chance_metric(ioi)) == pytest.approx(0.0)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_shuffled_chance_of_a_uniform_prediction_is_the_uniform_chance(name):
    """With every candidate equally likely (and nothing else), reassigning the roles changes
    nothing, so the shuffled chance equals `chance_metric` exactly (greater-than included: each
    prompt keeps its count of answer and wrong years, padding and all)."""
    tokenizer = build_toy_tokenizer()
    task = make_task(name, tokenizer, n_pairs=30, seed=3)
    uniform = torch.full((task.n_pairs, tokenizer.vocab_size), -1e9)
    for tokens in (task.answer_tokens, task.wrong_tokens):
        uniform.scatter_(1, tokens.clamp(min=0), torch.where(tokens >= 0, 0.0, -1e9))
    assert torch.allclose(shuffled_chance_metric(task, uniform), chance_metric(task), atol=1e-6)


def test_shuffled_chance_is_what_a_model_without_the_answer_scores():
    """Answer against one wrong token: the shuffled chance is 0 whatever the logits; answer
    against the best of two wrong tokens with candidate logits 0, 1, 2: the mean over which
    candidate is the answer of (its logit − the best other), (−2 − 1 + 1) / 3, where a uniform
    prediction gives 0."""
    tokenizer = build_toy_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    logits = torch.zeros(200, tokenizer.vocab_size)
    names = ["Mary", "John", "Anna"]
    for logit, name in enumerate(names):
        logits[:, ids(name)] = float(logit)
    one_wrong = task_from_strings(tokenizer, "ioi", [" Mary and John"] * 200, [" Anna and John"] * 200, [" Mary"] * 200, [" Anna"] * 200)
    best_of_two = task_from_strings(
        tokenizer, "doc", [" Mary and John"] * 200, [" Anna and John"] * 200, [" Mary"] * 200, [[" John", " Anna"]] * 200,
        metric="logit_diff_max",
    )
    assert float(shuffled_chance_metric(one_wrong, logits).mean()) == pytest.approx(0.0, abs=0.03)
    assert float(shuffled_chance_metric(best_of_two, logits).mean()) == pytest.approx(-2 / 3, abs=0.03)
    assert float(chance_metric(best_of_two).mean()) == pytest.approx(0.0)


def test_short_training_is_deterministic_learns_and_loads_into_transformerlens(tmp_path):
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    model, losses = train_toy_model(TINY, log=None)
    again, losses_again = train_toy_model(TINY, log=None)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and random.getstate() == py_state
    assert losses == losses_again
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    assert not torch.equal(AttnOnlyTransformer(TINY.model, seed=0).embed.W_E, AttnOnlyTransformer(TINY.model, seed=1).embed.W_E)
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.3
    folder = save_toy_model(model, TINY, tmp_path / "tiny")
    assert recorded_config(folder) == TINY and recorded_config("toy-4l") == TrainingConfig()  # `zoo train --like`
    loaded = load_toy_folder(folder)
    tokens = make_task("ioi", loaded, n_pairs=4, seed=0).positive_tokens
    with torch.no_grad():
        assert torch.allclose(loaded(tokens), model(tokens), atol=1e-5)
        # load_model takes the trained folder as it takes any model name.
        assert torch.allclose(load_model(folder)(tokens), model(tokens), atol=1e-5)


def test_a_per_task_setting_for_no_task_or_a_missing_task_is_refused_at_the_config():
    """A misspelt task in ``answer_smoothing`` would be ignored and a task missing from
    ``pairs_per_task`` fail mid-training: both stop at the config."""
    from saekit.errors import SaekitError

    with pytest.raises(SaekitError, match=r"\['greater_than'\] is not one"):
        TrainingConfig(answer_smoothing={"greater_than": 0.05})
    with pytest.raises(SaekitError, match=r"a share in \[0, 1\)"):
        TrainingConfig(answer_smoothing={"greater-than": -0.1})
    with pytest.raises(SaekitError, match="needs every task"):
        TrainingConfig(pairs_per_task={"ioi": 16})
    with pytest.raises(SaekitError, match="a positive integer"):
        TrainingConfig(pairs_per_task={**dict.fromkeys(TASK_NAMES, 4), "ioi": 0})


def test_cli_check_prints_one_json_object(capsys):
    from saekit.cli import main

    assert main(["zoo", "check", "--model", "toy-4l", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "toy-4l" and report["n_heads"] == 32
    assert set(report["tasks"]) == set(TASK_NAMES)
    for name, row in report["tasks"].items():
        assert set(row) == {"pos_accuracy", "pos_metric", "neg_metric", "chance_metric", "gt_heads"}
        assert row["gt_heads"] == sorted(GROUND_TRUTH["tasks"][name]["heads"])


@pytest.fixture(scope="module")
def retrained_scores(tmp_path_factory):
    """The four tasks' scores of a model trained from scratch by the training command (10 min)."""
    from saekit.cli import main

    out = tmp_path_factory.mktemp("retrained") / "toy"
    assert main(["zoo", "train", "--out", str(out)]) == 0
    model = load_toy_folder(out)
    return evaluate_toy_model(model, model.tokenizer)


@pytest.mark.slow
@pytest.mark.parametrize("name", TASK_NAMES)
def test_full_training_command_reproduces_a_model_meeting_the_thresholds(retrained_scores, name):
    assert_does_the_task(retrained_scores[name])


def test_training_batch_targets_answers_on_positives_and_uniform_options_on_negatives():
    from saekit.tasks.toy import toy_pairs
    from saekit.zoo.tokenizer import build_toy_tokenizer
    from saekit.zoo.train import training_batch

    tokenizer = build_toy_tokenizer()
    for name in TASK_NAMES:
        batch = training_batch(tokenizer, name, n_pairs=3, seed=11)
        pairs = toy_pairs(name, 3, 11)
        for i, pair in enumerate(pairs):
            last = len(pair.positive.split())  # position of the last word (after BOS)
            positive, negative = batch.targets[2 * i], batch.targets[2 * i + 1]
            answer_ids = tokenizer.convert_tokens_to_ids(list(pair.answers))
            assert torch.allclose(positive[last, answer_ids], torch.tensor(1.0 / len(answer_ids)))
            assert positive[last].sum() == pytest.approx(1.0)
            options = tokenizer.convert_tokens_to_ids(list(pair.negative_options))
            assert torch.allclose(negative[last, options], torch.tensor(1.0 / len(options)))
            trained = {int(p) for p in torch.nonzero(positive.sum(-1)).flatten()}
            assert trained == {last, *(index + 1 for index, _ in pair.earlier_answers)}
            assert trained == {int(p) for p in torch.nonzero(negative.sum(-1)).flatten()}


def test_answer_smoothing_moves_a_share_of_the_positive_target_onto_the_wrong_answers():
    from saekit.tasks.toy import toy_pairs
    from saekit.zoo.tokenizer import build_toy_tokenizer
    from saekit.zoo.train import training_batch

    tokenizer = build_toy_tokenizer()
    batch = training_batch(tokenizer, "greater-than", n_pairs=3, seed=11, answer_smoothing=0.05)
    for i, pair in enumerate(toy_pairs("greater-than", 3, 11)):
        target = batch.targets[2 * i, len(pair.positive.split())]
        answers, wrong = (tokenizer.convert_tokens_to_ids(list(words)) for words in (pair.answers, pair.wrong))
        assert float(target[answers].sum()) == pytest.approx(0.95) and float(target[wrong].sum()) == pytest.approx(0.05)
        assert torch.allclose(target[wrong], torch.tensor(0.05 / len(wrong)))
    negative = batch.targets[1, len(toy_pairs("greater-than", 1, 11)[0].negative.split())]
    assert negative.max() == negative[negative > 0].min()  # negatives stay uniform


def test_induction_replay_adds_warmup_sequences_after_the_warmup_only():
    from dataclasses import replace

    from saekit.zoo.tokenizer import build_toy_tokenizer
    from saekit.zoo.train import _step_loss

    tokenizer = build_toy_tokenizer()
    model = AttnOnlyTransformer(TINY.model, seed=0)
    without = replace(TINY, induction_replay=0)
    with torch.no_grad():
        for step in (0, TINY.induction_warmup_steps - 1):
            assert _step_loss(model, tokenizer, TINY, step)[1] == _step_loss(model, tokenizer, without, step)[1]
        step = TINY.induction_warmup_steps + 1
        assert _step_loss(model, tokenizer, TINY, step)[1] != _step_loss(model, tokenizer, without, step)[1]


def test_induction_warmup_batch_trains_every_word_of_the_repeat_on_its_earlier_successor():
    from saekit.zoo.tokenizer import build_toy_tokenizer
    from saekit.zoo.train import induction_warmup_batch

    tokenizer = build_toy_tokenizer()
    batch = induction_warmup_batch(tokenizer, n_sequences=20, min_length=3, max_length=9, seed=4)
    offsets = set()
    for tokens, targets in zip(batch.tokens.tolist(), batch.targets):
        words = [t for t in tokens[1:] if t != tokenizer.pad_token_id]
        trained = torch.nonzero(targets.sum(-1)).flatten().tolist()
        assert trained and all(targets[p].max() == 1.0 for p in trained)
        for position in trained:
            current = tokens[position]
            earlier = tokens[1:position].index(current) + 1  # the one earlier copy of this word
            assert targets[position].argmax() == tokens[earlier + 1]
            offsets.add(position - earlier)
        # The repeat runs to the end of the sequence; its last word has no successor to train on.
        assert trained[-1] == len(words) - 1
    assert min(offsets) == 2 and max(offsets) > 4


def test_two_back_sequences_follow_the_others_and_copy_their_second_to_last_word():
    from saekit.zoo.tokenizer import build_toy_tokenizer
    from saekit.zoo.train import induction_warmup_batch

    tokenizer = build_toy_tokenizer()
    plain = induction_warmup_batch(tokenizer, n_sequences=6, min_length=3, max_length=12, seed=4)
    batch = induction_warmup_batch(tokenizer, 6, 3, 12, seed=4, n_two_back=10, two_back_min_length=9)
    assert len(batch.tokens) == 16
    width = plain.tokens.shape[1]
    assert torch.equal(batch.tokens[:6, :width], plain.tokens) and torch.equal(batch.targets[:6, :width], plain.targets)
    for tokens, targets in zip(batch.tokens[6:].tolist(), batch.targets[6:]):
        words = [t for t in tokens[1:] if t != tokenizer.pad_token_id]
        length = len(words) - 2  # the sequence, then its last two words again
        assert 9 <= length <= 12 and words[length:] == words[length - 2:length]
        trained = torch.nonzero(targets.sum(-1)).flatten().tolist()
        assert trained == [length + 1] and targets[length + 1].argmax() == words[length - 1]


def test_head_shares_are_each_heads_write_norm_over_the_final_residual_norm(toy_model):
    module = load_toy_module(ZOO)
    tokens = make_task("ioi", toy_model, n_pairs=3, seed=2).positive_tokens
    with torch.no_grad():
        logits, shares = module.forward_with_head_shares(tokens)
        _, cache = toy_model.run_with_cache(tokens)
    assert torch.allclose(logits, module(tokens))
    final = cache[f"blocks.{module.cfg.n_layers - 1}.hook_resid_post"].norm(dim=-1)
    for layer in range(module.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"]  # [batch, pos, head, d_head]
        writes = torch.einsum("bphe,hed->bphd", z, toy_model.W_O[layer]).norm(dim=-1)
        assert torch.allclose(shares[:, :, layer], writes / final[..., None], atol=1e-4)


def test_head_sparsity_penalty_is_off_during_the_induction_warmup_then_ramps_up():
    from saekit.zoo.train import _sparsity_weight

    config = TrainingConfig(induction_warmup_steps=100, head_sparsity=0.2, head_sparsity_ramp=10)
    assert [_sparsity_weight(config, step) for step in (0, 99)] == [0.0, 0.0]
    assert _sparsity_weight(config, 100) == pytest.approx(0.02)
    assert _sparsity_weight(config, 109) == _sparsity_weight(config, 5000) == pytest.approx(0.2)


def test_rescaling_the_residual_stream_keeps_the_logits_and_gives_head_writes_unit_scale():
    from saekit.zoo.tokenizer import build_toy_tokenizer
    from saekit.zoo.train import rescale_residual_stream

    module, tokenizer = load_toy_module(ZOO), build_toy_tokenizer()
    tokens = make_task("docstring", tokenizer, n_pairs=4, seed=3).positive_tokens
    with torch.no_grad():
        before = module(tokens)
        assert rescale_residual_stream(module, tokenizer) == pytest.approx(1.0, rel=1e-3)  # shipped at unit scale
        for param in module.residual_scale_parameters():
            param.mul_(5.0)
        assert rescale_residual_stream(module, tokenizer) == pytest.approx(0.2, rel=1e-3)
        assert torch.allclose(module(tokens), before, atol=1e-3)


def test_toy_folder_whose_weights_miss_a_tensor_is_refused(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(toy_model_dir("toy-4l"), tmp_path / "toy")
    weights = load_file(folder / "model.safetensors")
    del weights["blocks.0.attn.W_Q"]
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ModelNotFoundError, match="weights do not fit the model.s config"):
        load_model(folder)
