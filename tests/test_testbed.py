"""The test-bed recipe: generic language, circuit placement, interchange patches and the SIIT losses."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch

from saekit.errors import SaekitError
from saekit.tasks import TASK_NAMES
from saekit.zoo.language import TESTBED_VOCABULARY, generic_documents
from saekit.zoo.model import AttnOnlyTransformer, ToyModelConfig, ZPatch
from saekit.zoo import testbed
from saekit.tasks.toy import toy_pairs
from saekit.zoo.testbed import CIRCUIT_ROLES, _task_batch, draw_circuits, grouped_pairs, role_names, task_losses
from saekit.zoo.train import pairs_batch
from saekit.zoo.tokenizer import build_toy_tokenizer


TINY_RUN = testbed.TestbedConfig(
    steps=8, induction_warmup_steps=2, induction_warmup_batch=2, generic_documents=2, cooldown_steps=0, eval_every=0,
    pairs_per_task=dict.fromkeys(TASK_NAMES, 2), task_group_size=2,
    model=ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=3, n_heads=6, d_model=16, d_head=4),
)
"""A run of a few steps on a tiny model, for tests of what happens at which step."""


@pytest.fixture(scope="module")
def tokenizer():
    return build_toy_tokenizer(TESTBED_VOCABULARY)


def test_documents_are_seeded_sized_and_in_vocabulary():
    documents = generic_documents(20, 63, seed=3)
    assert documents == generic_documents(20, 63, seed=3)
    assert documents != generic_documents(20, 63, seed=4)
    assert all(len(words) == 63 for words in documents)
    assert {w for words in documents for w in words} <= set(TESTBED_VOCABULARY)


def test_sentence_kinds_set_what_the_generic_text_holds(monkeypatch):
    """A kind at 0 never appears, the kinds not named keep their frequencies (no override gives
    the default documents), the training run draws its generic text with the config's kinds,
    and unknown kinds, negative frequencies and all kinds at 0 are refused at the config."""
    from saekit.zoo import language

    monkeypatch.setitem(language._SENTENCE_MAKERS, "task", lambda rng, topic, words: ["TASK"])
    default = generic_documents(100, 63, seed=0)
    assert generic_documents(100, 63, 0, {}) == default
    assert sum(words.count("TASK") for words in default) > 20
    assert not any("TASK" in words for words in generic_documents(100, 63, 0, {"task": 0.0}))
    doubled = generic_documents(100, 63, 0, {"task": 0.4})
    assert sum(words.count("TASK") for words in doubled) > 1.5 * sum(words.count("TASK") for words in default)
    drawn = []
    real_generic_documents = testbed.generic_documents
    monkeypatch.setattr(testbed, "generic_documents", lambda *args: drawn.append(args[-1]) or real_generic_documents(*args))
    testbed.train_testbed(replace(TINY_RUN, generic_sentence_kinds={"task": 0.0}), log=lambda *_: None)
    assert drawn and all(kinds == {"task": 0.0} for kinds in drawn)
    for kinds, message in (({"poem": 1.0}, r"Unknown sentence kinds \['poem'\]"), ({"task": -0.1}, "0 or more"),
                           (dict.fromkeys(language.SENTENCE_KINDS, 0.0), "At least one sentence kind")):
        with pytest.raises(SaekitError, match=message):
            testbed.TestbedConfig(generic_sentence_kinds=kinds)


def test_task_prompts_tokenize_as_on_the_toy_models(tokenizer):
    """The test-bed vocabulary extends the toy one: toy task prompts keep their token ids."""
    from saekit.tasks.toy import VOCABULARY

    assert TESTBED_VOCABULARY[: len(VOCABULARY)] == VOCABULARY
    assert len(set(TESTBED_VOCABULARY)) == len(TESTBED_VOCABULARY)


def test_words_are_zipfian_and_bursty():
    """Frequent names dominate the lexicon, and a document reuses its own few names."""
    from saekit.tasks.toy import NAMES

    documents = generic_documents(300, 63, seed=0)
    counts = Counter(w for words in documents for w in words if w in NAMES)
    ranked = [c for _, c in counts.most_common()]
    assert ranked[0] > 5 * ranked[-1]
    # Bursty: the share of a document's name tokens taken by its most common name is far above
    # what independent draws from the same frequencies give.
    rng = np.random.default_rng(0)
    names, frequency = zip(*counts.items())
    p = np.array(frequency) / sum(frequency)
    observed, independent = [], []
    for words in documents:
        in_document = [w for w in words if w in NAMES]
        if len(in_document) >= 4:
            observed.append(Counter(in_document).most_common(1)[0][1] / len(in_document))
            draw = rng.choice(len(names), size=len(in_document), p=p)
            independent.append(Counter(draw).most_common(1)[0][1] / len(in_document))
    assert np.mean(observed) > np.mean(independent) + 0.1


@pytest.mark.parametrize("shape", [(4, 8), (6, 16)])
def test_circuits_follow_their_stages_on_distinct_heads(shape):
    """Stage k of every circuit in layer k, no head shared; too shallow a model is refused."""
    n_layers, n_heads = shape
    circuits = draw_circuits(n_layers, n_heads, seed=0)
    assert circuits == draw_circuits(n_layers, n_heads, seed=0)
    heads = [(layer, head) for task in TASK_NAMES for layer, head, _ in circuits[task]]
    assert len(set(heads)) == len(heads)
    for task in TASK_NAMES:
        assert [role for _, _, role in circuits[task]] == role_names(task)
        layer_of = {role: layer for layer, _, role in circuits[task]}
        stage_layers = [{layer_of[role] for role in stage} for stage in CIRCUIT_ROLES[task]]
        assert all(len(layers) == 1 for layers in stage_layers), "a stage shares one layer"
        assert [layers.pop() for layers in stage_layers] == list(range(len(CIRCUIT_ROLES[task])))
    placements = {tuple(map(tuple, draw_circuits(n_layers, n_heads, seed)["ioi"])) for seed in range(6)}
    assert len(placements) > 1, "placement must change with the training seed"
    with pytest.raises(SaekitError, match="at least 3 layers"):
        draw_circuits(2, n_heads, seed=0)


def test_z_patch_matches_transformerlens_hook_z_patching(tokenizer, tmp_path):
    """Patching z in the plain training module is what replacing hook_z in TransformerLens does."""
    from transformers import AutoTokenizer

    from saekit import _tl

    cfg = ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=2, n_heads=4, d_model=32, d_head=8, n_ctx=16)
    module = AttnOnlyTransformer(cfg, seed=1).eval()
    tokens = torch.randint(3, cfg.d_vocab, (3, 10), generator=torch.Generator().manual_seed(0))
    source = torch.randn(3, 10, 4, 8, generator=torch.Generator().manual_seed(1))
    heads = torch.tensor([[True, False, False, True], [False, False, False, False], [False, True, False, False]])
    patches = [ZPatch(source, heads), None]
    with torch.no_grad():
        patched = module.unembed_residual(module.run_layers(tokens, patches)[0])
        clean = module(tokens)
    tokenizer.save_pretrained(tmp_path)  # TransformerLens needs a tokenizer loaded from a folder
    model = _tl.build_from_state_dict(cfg.tl_config(), module.state_dict(), AutoTokenizer.from_pretrained(tmp_path), "cpu")

    def replace(z, hook):
        return torch.where(heads[:, None, :, None], source, z)

    with torch.no_grad():
        expected = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", replace)])
    torch.testing.assert_close(patched, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(patched, clean, atol=1e-3)


def test_strictness_and_interchange_losses_see_only_their_heads(tokenizer):
    """With every head outside the circuit writing nothing, resampling them changes nothing, so the
    strictness loss equals the behaviour loss on the positives (toward the labels) or the clean
    output's entropy (toward the clean output); silencing a circuit head breaks that."""
    cfg = ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=2, n_heads=4, d_model=32, d_head=8, n_ctx=64)
    module = AttnOnlyTransformer(cfg, seed=0).eval()
    circuit = [(0, 1, "previous-token"), (1, 2, "induction")]
    config = testbed.TestbedConfig(pairs_per_task=dict.fromkeys(TASK_NAMES, 6), strict_log_odds=("induction",))
    batch, keys = _task_batch(tokenizer, "induction", config, 0, "cpu")  # with its answer sets
    with torch.no_grad():
        for layer in range(2):
            keep = torch.zeros(4, dtype=torch.bool)
            keep[[h for l, h, _ in circuit if l == layer]] = True
            module.blocks[layer].attn.W_O[~keep] = 0
        positives_only = type(batch)(batch.tokens[0::2], batch.targets[0::2])
        from saekit.zoo.testbed import _soft_cross_entropy

        behaviour_on_positives = _soft_cross_entropy(module(positives_only.tokens), positives_only.targets)
        _, _, strict = task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0))
        torch.testing.assert_close(strict, behaviour_on_positives)
        clean = module(positives_only.tokens).softmax(-1) * (positives_only.targets.sum(-1, keepdim=True) > 0)
        _, _, strict_toward_clean = task_losses(
            module, batch, keys, circuit, torch.Generator().manual_seed(0), strict_toward_clean=True
        )
        torch.testing.assert_close(strict_toward_clean, _soft_cross_entropy(module(positives_only.tokens), clean))
        wrong_circuit = [(0, 0, "previous-token"), (1, 3, "induction")]
        _, _, strict_wrong_circuit = task_losses(module, batch, keys, wrong_circuit, torch.Generator().manual_seed(0))
        for subset_share in (0.0, 1.0):
            on_logits = partial(task_losses, module, batch, keys, strict_logits=True, subset_share=subset_share)
            _, _, strict_logits = on_logits(circuit, torch.Generator().manual_seed(0))
            _, _, strict_logits_wrong_circuit = on_logits(wrong_circuit, torch.Generator().manual_seed(0))
            assert strict_logits.item() == pytest.approx(0.0, abs=1e-10)
            assert strict_logits_wrong_circuit.item() > 1e-4
        with_log_odds = partial(task_losses, module, batch, keys, strict_log_odds=True)
        torch.testing.assert_close(with_log_odds(circuit, torch.Generator().manual_seed(0))[2], behaviour_on_positives)
        assert with_log_odds(wrong_circuit, torch.Generator().manual_seed(0))[2] > strict_wrong_circuit + 1e-4
    assert not torch.isclose(strict_wrong_circuit, behaviour_on_positives)


@pytest.mark.parametrize("settings", [
    {}, {"strict_toward_clean": True}, {"strict_logits": True}, {"strict_log_odds": ("induction",)},
    {"strict_subsets": True, "strict_subset_share": 0.5}, {"strict_one_head_share": 0.5},
    {"strict_one_head_share": 0.5, "strict_one_head_beside": True}, {"iit_negative_share": 0.2},
])
def test_recipe_task_losses_pass_the_config_settings_on(tokenizer, settings):
    """`recipe_task_losses` (the training loop's and the one-task harness's call) gives what
    `task_losses` gives with the settings spelled out, and each setting changes the losses."""
    cfg = ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=2, n_heads=4, d_model=32, d_head=8, n_ctx=64)
    module = AttnOnlyTransformer(cfg, seed=0)
    circuit = [(0, 1, "previous-token"), (0, 2, "duplicate-token"), (1, 2, "induction")]
    config = testbed.TestbedConfig(pairs_per_task=dict.fromkeys(TASK_NAMES, 8), strict_logits=True)
    batch, keys = _task_batch(tokenizer, "induction", config, 0, "cpu")  # with its answer sets
    config = replace(config, **{"strict_logits": False, **settings})
    spelled_out = {
        "negative_share": config.iit_negative_share, "strict_toward_clean": config.strict_toward_clean,
        "strict_logits": config.strict_logits, "strict_log_odds": "induction" in config.strict_log_odds,
        "subset_share": config.strict_subset_share if config.strict_subsets else 0.0,
        "one_head_share": config.strict_one_head_share, "one_head_beside": config.strict_one_head_beside,
    }
    with torch.no_grad():
        recipe = testbed.recipe_task_losses(module, config, "induction", batch, keys, circuit, torch.Generator().manual_seed(1))
        direct = task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(1), **spelled_out)
        default = task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(recipe, direct))
    assert (recipe != default) == bool(settings)


def test_candidate_logit_distance_reads_only_differences_between_candidates():
    """Zero for a shift of every logit at a position; a candidate's logit moved by d among n
    candidates gives d^2 (n - 1) / n^2; tokens outside the candidates and positions without any
    are not read."""
    candidates = torch.zeros(1, 3, 5)
    candidates[0, 0, :4] = 1.0
    candidates[0, 1, [1, 3]] = 1.0
    reference = torch.randn(1, 3, 5, generator=torch.Generator().manual_seed(0))
    shifted = reference + torch.tensor([1.0, -2.0, 5.0])[None, :, None]
    shifted[0, 0, 4] += 7.0  # not a candidate
    shifted[0, 2] += torch.arange(5.0)  # a position without candidates
    assert testbed.candidate_logit_distance(shifted, reference, candidates).item() == pytest.approx(0.0, abs=1e-6)
    moved = shifted.clone()
    moved[0, 0, 2] += 2.0
    expected = (2.0**2 * 3 / 16 + 0.0) / 2  # mean over the two positions with candidates
    assert testbed.candidate_logit_distance(moved, reference, candidates).item() == pytest.approx(expected, rel=1e-5)


def test_strict_log_odds_names_the_tasks_whose_batches_carry_answer_signs(tokenizer):
    """Only the tasks ``strict_log_odds`` lists get answer signs (what its loss reads); a list
    from JSON becomes a tuple, and an unknown or repeated task is refused at the config."""
    config = testbed.TestbedConfig(pairs_per_task=dict.fromkeys(TASK_NAMES, 4), strict_log_odds=["ioi", "induction"])
    assert config.strict_log_odds == ("ioi", "induction")
    with_signs = {task for task in TASK_NAMES if _task_batch(tokenizer, task, config, 0, "cpu")[0].answer_signs is not None}
    assert with_signs == {"ioi", "induction"}
    for tasks in (["ioi", "doc"], ["ioi", "ioi"], True):
        with pytest.raises(SaekitError, match="strict_log_odds lists distinct tasks of ioi"):
            testbed.TestbedConfig(strict_log_odds=tasks)


def test_candidates_are_the_answers_the_wrong_answers_and_the_negative_options(tokenizer):
    """At every trained position of both prompts of a pair (for induction, every word of the
    repeat): the answers, the wrong answers and the negative's options; nothing elsewhere."""
    vocab = tokenizer.get_vocab()
    for task in ("docstring", "induction"):  # docstring's wrong answers are not among its options
        pairs = toy_pairs(task, 3, seed=0)
        assert pairs_batch(tokenizer, pairs).candidates is None, "built only when asked for"
        batch = pairs_batch(tokenizer, pairs, answer_sets=True)
        for row in range(len(batch.tokens)):
            pair = pairs[row // 2]
            expected = {vocab[word] for word in (*pair.answers, *pair.wrong, *pair.negative_options)}
            trained = batch.targets[row].sum(-1) > 0
            assert trained.sum() == 1 + len(pair.earlier_answers)
            for position in trained.nonzero()[:, 0].tolist():
                assert set(batch.candidates[row, position].nonzero()[:, 0].tolist()) == expected
            assert (batch.candidates[row, ~trained] == 0).all()
            final = len(pair.positive.split()) if row % 2 == 0 else len(pair.negative.split())
            signs = batch.answer_signs[row]
            assert set(signs[final].eq(1).nonzero()[:, 0].tolist()) == {vocab[word] for word in pair.answers}
            assert set(signs[final].eq(-1).nonzero()[:, 0].tolist()) == {vocab[word] for word in pair.wrong}
            assert signs.abs().sum() == len(pair.answers) + len(pair.wrong)


def test_answer_log_odds_compare_the_answers_mass_with_the_wrong_answers_mass():
    """log(p(answers) / p(wrong)) at the marked position, whatever the other tokens' logits."""
    logits = torch.zeros(2, 3, 5)
    logits[0, 1] = torch.tensor([2.0, 0.0, 0.0, 1.0, 9.0])
    logits[1, 2] = torch.tensor([0.0, 3.0, 3.0, 1.0, -4.0])
    signs = torch.zeros(2, 3, 5)
    signs[0, 1, 0], signs[0, 1, [1, 2]] = 1.0, -1.0
    signs[1, 2, [1, 2]], signs[1, 2, 3] = 1.0, -1.0
    expected = torch.tensor([2.0 - math.log(2.0), 3.0 + math.log(2.0) - 1.0])
    torch.testing.assert_close(testbed.answer_log_odds(logits, signs), expected)


def test_each_task_batch_holds_its_own_pair_count(tokenizer):
    """``pairs_per_task`` is per task: docstring can get more pairs per step than the others."""
    config = testbed.TestbedConfig(pairs_per_task={**dict.fromkeys(TASK_NAMES, 4), "docstring": 8})
    for task in TASK_NAMES:
        batch, keys = _task_batch(tokenizer, task, config, 0, "cpu")
        assert (len(batch.tokens), len(keys)) == (2 * config.pairs_per_task[task], config.pairs_per_task[task]), task


def test_task_losses_keep_every_tensor_on_the_model_device(tokenizer, monkeypatch):
    """On another device than the CPU (here ``meta``, which refuses to mix devices as CUDA does),
    the batch, the interchange patches and the losses stay on the model's device while the
    random choices are drawn on the CPU."""
    import torch.fx.experimental._config as fx_config

    monkeypatch.setattr(fx_config, "meta_nonzero_assume_all_nonzero", True)  # boolean masks on meta
    config = testbed.TestbedConfig(pairs_per_task=dict.fromkeys(TASK_NAMES, 6), task_group_size=2)
    module = AttnOnlyTransformer(config.model).to("meta")
    batch, keys = _task_batch(tokenizer, "ioi", config, 0, "meta")
    assert (batch.tokens.device.type, batch.targets.device.type, keys.device.type) == ("meta", "meta", "cpu")
    circuit = draw_circuits(config.model.n_layers, config.model.n_heads, 0)["ioi"]
    losses = task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0), strict_toward_clean=True)
    assert [loss.device.type for loss in losses] == ["meta"] * 3


def test_interchange_rows_swap_the_whole_circuit_from_the_negative_or_the_last_role_from_a_partner(tokenizer, monkeypatch):
    """Negative-side rows take every circuit head (and only those) from the paired negative or the
    negatives' same-template mean; partner rows take the last role alone from another positive of
    the same template. Strict rows take every other head."""
    cfg = ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=3, n_heads=4, d_model=32, d_head=8, n_ctx=64)
    module = AttnOnlyTransformer(cfg, seed=0).eval()
    circuit = [(0, 1, "duplicate-token"), (1, 2, "s-inhibition"), (2, 0, "name-mover")]
    in_circuit = torch.zeros(3, 4, dtype=torch.bool)
    in_circuit[[0, 1, 2], [1, 2, 0]] = True
    last_only = torch.zeros(3, 4, dtype=torch.bool)
    last_only[2, 0] = True
    pairs = toy_pairs("ioi", 16, seed=0)  # drawn freely, not in runs: some have a same-key partner, some not
    batch, keys = pairs_batch(tokenizer, pairs), torch.tensor([testbed.pair_key(pair) for pair in pairs])
    n_pairs = len(keys)
    same = keys[:, None] == keys[None, :]
    has_partner = same.sum(1) > 1
    assert has_partner.any() and not has_partner.all(), "the batch must hold both kinds of rows"
    clean_z = module.run_layers(batch.tokens)[2]
    recorded = []
    run_layers = module.run_layers
    monkeypatch.setattr(module, "run_layers", lambda tokens, patches=None: (recorded.append(patches), run_layers(tokens, patches))[1])

    def patched_heads(patches):  # rows, layer, head
        return torch.stack([patch.heads for patch in patches], 1)

    with torch.no_grad():
        task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0), negative_share=1.0)
    heads = patched_heads(recorded[-1])
    assert (heads[:n_pairs] == ~in_circuit).all()
    assert (heads[n_pairs:] == in_circuit).all()
    for row in range(n_pairs):
        negatives = clean_z[2][1::2][same[row]]
        sources = torch.cat([clean_z[2][2 * row + 1][None], negatives.mean(0, keepdim=True)])
        z = recorded[-1][2].z[n_pairs + row, :, 0]
        assert any(torch.allclose(z, source[:, 0]) for source in sources), "name mover from the negative side"

    with torch.no_grad():
        task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0), negative_share=0.0)
    heads = patched_heads(recorded[-1])[n_pairs:]
    assert (heads[has_partner] == last_only).all()
    assert (heads[~has_partner] == in_circuit).all(), "a prompt without a partner falls back to the negative side"
    for row in has_partner.nonzero()[:, 0].tolist():
        others = [j for j in same[row].nonzero()[:, 0].tolist() if j != row]
        z = recorded[-1][2].z[n_pairs + row, :, 0]
        assert any(torch.allclose(z, clean_z[2][2 * j, :, 0]) for j in others), "name mover from another positive"

    with torch.no_grad():
        task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0), subset_share=1.0)
    strict_heads = patched_heads(recorded[-1])[:n_pairs]
    assert not (strict_heads & in_circuit).any(), "strict rows with subsets still patch outside heads only"
    patched_share = strict_heads.sum((1, 2)) / (~in_circuit).sum()
    assert patched_share.min() < 0.5 < patched_share.max()

    for subset_share in (0.0, 0.5):
        with torch.no_grad():
            task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0), subset_share=subset_share)
        every_head = (patched_heads(recorded[-1])[:n_pairs] == ~in_circuit).all((1, 2))
        if subset_share == 0.0:
            assert every_head.all(), "with no subset rows every strict row patches every head outside"
        else:
            assert 0 < every_head.sum() < n_pairs, "some rows patch every head outside, some a subset"

    for one_head_share in (1.0, 0.5):
        with torch.no_grad():
            task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0), one_head_share=one_head_share)
        strict_heads = patched_heads(recorded[-1])[:n_pairs]
        one_head = strict_heads.sum((1, 2)) == 1
        assert not (strict_heads & in_circuit).any(), "one-head rows patch a head outside"
        if one_head_share == 1.0:
            assert one_head.all(), "every strict row patches one head"
            assert len({tuple(row.nonzero()[0].tolist()) for row in strict_heads}) > 1, "drawn per row"
        else:
            every_head = (strict_heads == ~in_circuit).all((1, 2))
            assert (one_head | every_head).all() and 0 < one_head.sum() < n_pairs, "some rows one head, the others all"

    with torch.no_grad():
        task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0), one_head_share=0.5, one_head_beside=True)
    heads = patched_heads(recorded[-1])
    n_added = len(heads) - 2 * n_pairs
    assert 0 < n_added < n_pairs, "about half the pairs get a one-head row"
    assert (heads[:n_pairs] == ~in_circuit).all(), "beside them, every pair keeps its row patching every head outside"
    assert (heads[n_pairs:n_pairs + n_added].sum((1, 2)) == 1).all() and not (heads[n_pairs:] & in_circuit)[:n_added].any()
    assert not (heads[n_pairs + n_added:] & ~in_circuit).any(), "the interchange rows come last"
    z = recorded[-1][0].z
    assert all(any(torch.equal(z[row], z[pair]) for pair in range(n_pairs)) for row in range(n_pairs, n_pairs + n_added)), \
        "a one-head row takes the sources of its pair's strict row"

    favoured = torch.zeros(3, 4)
    favoured[1, 3], favoured[0, 1] = 1.0, 5.0  # 0.1 is in the circuit: never drawn
    with torch.no_grad():
        task_losses(module, batch, keys, circuit, torch.Generator().manual_seed(0), one_head_share=1.0, one_head_weights=favoured)
    strict_heads = patched_heads(recorded[-1])[:n_pairs]
    assert (strict_heads.sum((1, 2)) == 1).all() and strict_heads[:, 1, 3].all(), "the one-head draw follows its weights"


def test_training_measures_the_effects_outside_every_few_steps_logs_them_and_passes_the_draw_weights_on(monkeypatch):
    """`train_testbed` measures the effects outside from the first task step and every
    ``OUTSIDE_EFFECTS_EVERY`` steps after it, logs each task's largest, and with
    ``strict_one_head_adaptive`` each task's losses take its latest draw weights."""
    monkeypatch.setattr(testbed, "OUTSIDE_EFFECTS_EVERY", 5)
    measured, passed = [], []
    measure_effects, recipe_task_losses = testbed.measured_outside_effects, testbed.recipe_task_losses

    def measure(model, tokenizer, config, circuits, step, device):
        measured.append((step, measure_effects(model, tokenizer, config, circuits, step, device)))
        return measured[-1][1]

    def losses(*args):
        passed.append((len(measured), args[2], args[-1]))
        return recipe_task_losses(*args)

    monkeypatch.setattr(testbed, "measured_outside_effects", measure)
    monkeypatch.setattr(testbed, "recipe_task_losses", losses)
    model = ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=3, n_heads=6, d_model=32, d_head=8, n_ctx=64)
    config = testbed.TestbedConfig(
        model=model, induction_warmup_steps=0, pretrain_steps=0, task_phases=(), steps=12, eval_every=0, cooldown_steps=0,
        pairs_per_task=dict.fromkeys(TASK_NAMES, 4), task_group_size=2, strict_one_head_share=1.0, strict_one_head_adaptive=0.5,
    )
    lines = []
    _, circuits = testbed.train_testbed(config, log=lines.append)
    assert [step for step, _ in measured] == [0, 5, 10]
    logged = [line for line in lines if "largest effect outside" in line]
    assert [line.split(":")[0] for line in logged] == ["step 0", "step 5", "step 10"]
    for line, (_, effects) in zip(logged, measured):
        assert line.endswith(testbed.largest_outside_summary(effects))
    assert len(passed) == 12 * len(TASK_NAMES)
    expected = [testbed.one_head_draw_weights(effects, circuits, config) for _, effects in measured]
    assert all(torch.equal(weights, expected[n - 1][task]) for n, task, weights in passed), "each task takes its latest weights"


def test_largest_outside_summary_names_each_tasks_largest_head():
    effects = {"ioi": torch.tensor([[0.0, 0.01], [0.2, 0.03]]), "induction": torch.tensor([[0.05, 0.0], [0.0, 0.04]])}
    assert testbed.largest_outside_summary(effects) == "ioi 0.200 (1.0)  induction 0.050 (0.0)"
    assert testbed.largest_outside_summary(effects, idle=("ioi",)) == "ioi 0.200 (1.0) idle  induction 0.050 (0.0)"


def test_outside_head_effects_patch_each_head_outside_alone_from_the_paired_negative(tokenizer):
    """The blocks of rows patch one head each: the effects equal a loop that patches each head
    alone, as a share of the positives' and negatives' log-odds gap; 0 on the circuit's heads.
    `one_head_draw_weights` mixes them with a uniform draw over the heads outside."""
    cfg = ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=3, n_heads=6, d_model=32, d_head=8, n_ctx=64)
    module = AttnOnlyTransformer(cfg, seed=0).eval()
    circuit = [(0, 1, "previous-token"), (0, 2, "duplicate-token"), (1, 2, "induction")]
    config = testbed.TestbedConfig(pairs_per_task=dict.fromkeys(TASK_NAMES, 8), model=cfg)
    batch, _ = _task_batch(tokenizer, "induction", config, 0, "cpu", answer_sets=True)
    with torch.no_grad():
        effects = testbed.outside_head_effects(module, batch, circuit)
        positives, negatives, signs = batch.tokens[0::2], batch.tokens[1::2], batch.answer_signs[0::2]
        log_odds = lambda tokens, patches=None: testbed.answer_log_odds(  # noqa: E731
            module.unembed_residual(module.run_layers(tokens, patches)[0]), signs)
        clean, negative_z = log_odds(positives), module.run_layers(negatives)[2]
        gap = clean.mean() - log_odds(negatives).mean()
        expected = torch.zeros(3, 6)
        for layer, head in [(layer, head) for layer in range(3) for head in range(6) if (layer, head) not in {(0, 1), (0, 2), (1, 2)}]:
            only = torch.zeros(len(positives), 3, 6, dtype=torch.bool)
            only[:, layer, head] = True
            patched = log_odds(positives, [ZPatch(z, only[:, i]) for i, z in enumerate(negative_z)])
            expected[layer, head] = (patched - clean).mean().abs() / gap.abs()
    torch.testing.assert_close(effects, expected)
    assert (effects > 0).sum() == 15, "every head outside moves the untrained model's answer"

    circuits = {"induction": circuit}
    with torch.no_grad():
        measured = testbed.measured_outside_effects(module, tokenizer, config, circuits, 0, "cpu")
        fresh, _ = _task_batch(tokenizer, "induction", config, testbed._step_seed(config.seed, 0, 90), "cpu", answer_sets=True)
        torch.testing.assert_close(measured["induction"], testbed.outside_head_effects(module, fresh, circuit))
    assert testbed.one_head_draw_weights(measured, circuits, config) == {}
    adaptive = replace(config, strict_one_head_share=1.0, strict_one_head_adaptive=0.25)
    weights = testbed.one_head_draw_weights(measured, circuits, adaptive)["induction"]
    outside = expected > 0
    torch.testing.assert_close(weights, 0.75 * outside / outside.sum() + 0.25 * measured["induction"] / measured["induction"].sum())


@pytest.mark.parametrize("task", TASK_NAMES)
def test_task_batches_come_in_runs_of_one_template_and_length(task):
    """Each run of ``group_size`` pairs shares template and length, runs differ, the draw is seeded;
    so every prompt has same-key partners for the interchange and strictness sources."""
    pairs = grouped_pairs(task, 12, 4, seed=3)
    keys = [testbed.pair_key(pair) for pair in pairs]
    runs = [keys[i : i + 4] for i in range(0, 12, 4)]
    assert all(len(set(run)) == 1 for run in runs)
    assert len({run[0] for run in runs}) == 3
    assert [p.positive for p in grouped_pairs(task, 12, 4, seed=3)] == [p.positive for p in pairs]
    assert [p.positive for p in grouped_pairs(task, 12, 4, seed=4)] != [p.positive for p in pairs]
    key_tensor = torch.tensor(keys)
    partner = testbed.same_template_partners(key_tensor, torch.Generator().manual_seed(0))
    assert (partner != torch.arange(12)).all()


def test_task_batches_draw_more_pairs_until_a_run_fits():
    """A run as large as the batch is found even where the first pool of 96 holds no 12 of one
    length (induction at seed 13), and the pool's extension keeps the draws of a smaller one."""
    run = grouped_pairs("induction", 12, 12, seed=13)
    assert len({testbed.pair_key(pair) for pair in run}) == 1
    assert toy_pairs("induction", 96, seed=13) == toy_pairs("induction", 192, seed=13)[:96]
    with pytest.raises(SaekitError, match="task_group_size must be between 2"):
        grouped_pairs("docstring", 12, 13, seed=0)


def test_task_batches_larger_than_one_run_per_key_take_further_runs():
    """ioi has 8 template-and-length keys: 36 pairs in runs of 4 are one run of each key, then a
    second run of one of them (before, the pool doubled for ever)."""
    pairs = grouped_pairs("ioi", 36, 4, seed=5)
    keys = [testbed.pair_key(pair) for pair in pairs]
    runs = [keys[i : i + 4] for i in range(0, 36, 4)]
    assert len(pairs) == 36 and all(len(set(run)) == 1 for run in runs)
    assert len({run[0] for run in runs[:8]}) == 8 and runs[8][0] in {run[0] for run in runs[:8]}
    assert len(set(pairs)) == 36


def test_card_partners_share_template_and_length():
    from saekit import load_model
    from saekit.tasks import make_task
    task = make_task("ioi", load_model("toy-4l"), n_pairs=60, seed=0)
    key = task.template_ids * 10_000 + task.lengths
    partner = testbed.same_template_partners(key, torch.Generator().manual_seed(0))
    assert torch.equal(task.template_ids[partner], task.template_ids)
    assert torch.equal(task.lengths[partner], task.lengths)
    has_other = torch.tensor([(key == k).sum() > 1 for k in key])
    assert torch.equal(partner != torch.arange(60), has_other)


def test_card_measures_agree_with_the_ablation_stage():
    """The card's numbers are the ablation stage's: a circuit of every head is fully faithful and
    ablating it leaves what ablating everything leaves; effects are patching effects over the gap."""
    from saekit import load_model
    from saekit.ablation import evaluate_circuit, head_patching_prompt_effects
    from saekit.scoring import roc_auc
    from saekit.tasks import make_task
    from saekit.zoo.card import task_card

    model = load_model("toy-4l")
    task = make_task("greater-than", model, n_pairs=40, seed=1)
    everything = [(layer, head) for layer in range(4) for head in range(8)]
    card = task_card(model, task, everything[:-1])
    gap = abs(card["pos_metric"] - card["neg_metric"])
    prompt_effects = head_patching_prompt_effects(model, task) / gap
    effects = prompt_effects.mean(-1).abs()
    standard_error = float(prompt_effects[3, 7].std() / 40**0.5)
    assert card["circuit_share"] == 31 / 32
    assert card["max_effect_outside"] == pytest.approx(float(effects[3, 7]), rel=1e-4)
    assert card["max_effect_outside_head"] == [3, 7]
    assert card["max_effect_outside_se"] == pytest.approx(standard_error, rel=1e-4) and standard_error > 0
    # One head outside: the floor is the mean of |N(0, se)|, se·√(2/π).
    assert card["outside_noise_floor"] == pytest.approx(standard_error * (2 / math.pi) ** 0.5, rel=0.05)
    assert card["circuit_head_effects"] == pytest.approx(effects.flatten()[:-1].tolist(), rel=1e-4)
    assert card["causal_auc"]["activation_patching"] == pytest.approx(roc_auc(effects, everything[:-1]))
    for kind in ("mean", "resample"):
        ends = evaluate_circuit(model, task, everything[:-1], kind)[1]
        removed = (ends.full - ends.ablated_all) / (card["pos_metric"] - card["neg_metric"])
        assert card["ablated_all_share"][kind] == pytest.approx(removed, rel=1e-4) and removed > 0.5
    assert 0 <= card["interchange_accuracy"] <= 1 and 0 <= card["neg_accuracy"] <= 1


def test_noise_floor_keeps_the_heads_correlation_and_ignores_their_effects():
    """The floor is what noise alone gives: a head's true effect (its mean) does not move it;
    heads measured with one error (identical per-pair values) give the floor of one head, while
    as many heads with independent errors give a higher one; one head gives E|N(0, se)|."""
    from saekit.zoo.card import noise_floor

    generator = torch.Generator().manual_seed(0)
    one = torch.randn(1, 250, generator=generator, dtype=torch.float64)
    standard_error = float(one.std() / 250**0.5)
    assert noise_floor(one) == pytest.approx(standard_error * (2 / math.pi) ** 0.5, rel=0.05)
    assert noise_floor(one + 3.0) == pytest.approx(noise_floor(one), rel=1e-9)
    assert noise_floor(one.repeat(28, 1)) == pytest.approx(noise_floor(one), rel=1e-9)
    independent = torch.randn(28, 250, generator=generator, dtype=torch.float64)
    assert noise_floor(independent) > 2 * noise_floor(independent[:1])


def _passing_card(heads: list[list[int]]) -> dict:
    """A card that meets every acceptance bar, by a margin."""
    return {
        "pos_accuracy": 0.97, "pos_metric": 3.0, "neg_metric": 0.5, "neg_chance_metric": 0.0,
        "faithfulness": {"mean": 0.95, "resample": 0.92},
        "faithfulness_circuit_ablated": {"mean": 0.1, "resample": -0.3},
        "ablated_all_share": {"mean": 0.85, "resample": 1.0},
        "circuit_head_effects": [0.3, 0.06], "max_effect_outside": 0.015, "circuit_share": 2 / 32,
        "heads": heads,
        "premise_auc": {"head_norm": 0.7, "layer_index": 0.2, "mean_difference": 1.0, "d_prime": 1.0, "probe": 1.0},
        "causal_auc": {"activation_patching": 0.96, "acdc": 1.0},
    }


@pytest.mark.parametrize(
    ("bar", "change"),
    [
        ("accuracy", {"pos_accuracy": 0.94}),
        ("negatives_near_chance", {"neg_metric": 0.61}),
        ("negatives_near_chance", {"neg_metric": -0.61}),
        ("faithful_mean", {"faithfulness": {"mean": 0.89, "resample": 0.92}}),
        ("faithful_resample", {"faithfulness": {"mean": 0.95, "resample": 0.89}}),
        ("circuit_ablated", {"faithfulness_circuit_ablated": {"mean": 0.1, "resample": 0.21}}),
        ("circuit_heads", {"circuit_head_effects": [0.3, 0.049]}),
        ("outside", {"max_effect_outside": 0.021}),
        ("share", {"circuit_share": 9 / 32}),
        ("head_norm", {"premise_auc": {"head_norm": 0.76, "layer_index": 0.2}}),
        ("layer_index", {"premise_auc": {"head_norm": 0.7, "layer_index": 0.76}}),
        ("activation_patching", {"causal_auc": {"activation_patching": 0.94, "acdc": 1.0}}),
        ("acdc", {"causal_auc": {"activation_patching": 0.96, "acdc": 0.94}}),
    ],
)
def test_acceptance_bars_miss_exactly_the_bar_a_card_falls_short_of(bar, change):
    """Each bar reads its own measure at the documented threshold: a card that meets every bar
    misses only the one whose measure is moved just past it."""
    from saekit.zoo.card import acceptance_bars

    cards = {"ioi": _passing_card([[0, 1], [1, 2]]), "induction": _passing_card([[0, 3], [1, 2]])}
    assert all(all(bars.values()) for bars in acceptance_bars(cards).values())
    cards["ioi"] = {**cards["ioi"], **change}
    bars = acceptance_bars(cards)
    assert [name for name, met in bars["ioi"].items() if not met] == [bar]
    assert all(bars["induction"].values())


@pytest.mark.parametrize(
    ("shares", "missed"),
    [
        ({"mean": 0.79, "resample": 1.0}, ["faithful_mean", "circuit_ablated"]),
        ({"mean": 1.0, "resample": 0.79}, ["faithful_resample", "circuit_ablated"]),
        ({"mean": -1.0, "resample": 1.0}, ["faithful_mean", "circuit_ablated"]),
        ({"mean": None, "resample": None}, ["faithful_mean", "faithful_resample", "circuit_ablated"]),
        ({"mean": math.nan, "resample": 1.0}, ["faithful_mean", "circuit_ablated"]),
    ],
)
def test_faithfulness_bars_miss_where_ablating_every_head_removes_little_of_the_gap(shares, missed):
    """Faithfulness is a ratio to what ablating every head removes: where that is under
    `ABLATION_REACH` of the gap (or the gap is 0, a null share) the faithfulness bars of that
    ablation are missed, however high the ratio reads."""
    from saekit.zoo.card import acceptance_bars

    card = {**_passing_card([[0, 1], [1, 2]]), "faithfulness": {"mean": 7.63, "resample": 3899.0}}
    assert all(acceptance_bars({"docstring": card})["docstring"].values())
    bars = acceptance_bars({"docstring": {**card, "ablated_all_share": shares}})["docstring"]
    assert [name for name, met in bars.items() if not met] == missed
    assert all(met is False for name, met in bars.items() if name in missed)


def test_acceptance_bars_need_distinct_circuits_and_leave_unmeasured_bars_open():
    """Two tasks on the same heads both miss "distinct"; a card without the causal AUCs, the
    negatives' chance and the share of the gap ablating every head removes (written before they
    were measured) or with ACDC refused leaves those bars None, neither met nor missed."""
    from saekit.zoo.card import acceptance_bars

    same = [[0, 1], [1, 2]]
    unmeasured = ("causal_auc", "neg_chance_metric", "ablated_all_share")
    old = {key: value for key, value in _passing_card(same).items() if key not in unmeasured}
    refused = {**_passing_card([[0, 4], [1, 2]]), "causal_auc": {"activation_patching": 0.96, "acdc": None}}
    bars = acceptance_bars({"ioi": _passing_card(same), "docstring": old, "greater-than": refused})
    assert bars["ioi"]["distinct"] is False and bars["docstring"]["distinct"] is False
    assert bars["greater-than"]["distinct"] is True
    assert bars["docstring"]["activation_patching"] is None and bars["docstring"]["acdc"] is None
    assert bars["docstring"]["negatives_near_chance"] is None
    assert all(bars["docstring"][name] is None for name in ("faithful_mean", "faithful_resample", "circuit_ablated"))
    assert bars["greater-than"]["acdc"] is None and bars["greater-than"]["activation_patching"] is True


def test_zoo_train_testbed_writes_a_loadable_model_with_roles(tmp_path, capsys):
    """`saekit zoo train --recipe testbed` trains (a few steps, interchange losses included) and
    writes the zoo layout, with every circuit head's role in ground_truth.json."""
    import json

    from saekit import load_model
    from saekit.cli import main

    out = tmp_path / "tb"
    command = ["zoo", "train", "--recipe", "testbed", "--steps", "3", "--warmup-steps", "1", "--pretrain-steps", "1"]
    assert main([*command, "--out", str(out)]) == 0
    truth = json.loads((out / "ground_truth.json").read_text())
    assert {task: circuit["roles"] for task, circuit in truth["tasks"].items()} == {t: role_names(t) for t in CIRCUIT_ROLES}
    heads = [tuple(head) for circuit in truth["tasks"].values() for head in circuit["heads"]]
    assert len(set(heads)) == len(heads), "no head in two circuits"
    assert all(layers == sorted(layers) for layers in ([l for l, _ in c["heads"]] for c in truth["tasks"].values()))
    model = load_model(out)
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_vocab) == (4, 8, len(TESTBED_VOCABULARY))
    assert main(["zoo", "train", "--recipe", "testbed", "--steps", "3"]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_zoo_train_checkpoint_continues_a_run_and_is_removed_once_the_model_is_saved(tmp_path, monkeypatch, capsys):
    """`saekit zoo train --checkpoint FILE` saves the state as it trains; a run stopped before
    its model is saved leaves FILE, the same command continues from it, and FILE goes once the
    model is written. The toy recipe refuses both checkpoint flags, and ``--checkpoint-every``
    without ``--checkpoint`` is refused rather than ignored."""
    from saekit.cli import main

    checkpoint = tmp_path / "state.pt"
    command = ["zoo", "train", "--recipe", "testbed", "--steps", "4", "--warmup-steps", "1", "--pretrain-steps", "1",
               "--out", str(tmp_path / "tb"), "--checkpoint", str(checkpoint), "--checkpoint-every", "2"]
    save_testbed = testbed.save_testbed
    monkeypatch.setattr(testbed, "save_testbed", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(command) == 130, "interrupted (Ctrl-C) between the last step and the save"
    assert checkpoint.exists()
    monkeypatch.setattr(testbed, "save_testbed", save_testbed)
    capsys.readouterr()
    assert main(command) == 0
    assert f"resuming at step 2 from {checkpoint}" in capsys.readouterr().out
    assert not checkpoint.exists() and (tmp_path / "tb" / "ground_truth.json").exists()
    for flag in (["--checkpoint", str(checkpoint)], ["--checkpoint-every", "2"]):
        assert main(["zoo", "train", "--steps", "3", "--out", str(tmp_path / "toy"), *flag]) == 2, flag
        assert "--checkpoint belongs to --recipe testbed" in capsys.readouterr().err, flag
    assert main([*command[:-4], "--checkpoint-every", "2"]) == 2, "how often, with nothing to write"
    assert "add --checkpoint FILE" in capsys.readouterr().err


def test_a_run_without_room_or_time_for_the_circuits_is_refused_before_training(monkeypatch, capsys, tmp_path):
    """Too shallow a shape, steps that end before the tasks join, task batches that cannot be
    grouped, two strictness targets at once, a share outside [0, 1], a subset share without
    subsets, or one-head rows beside or drawn by effect with no share of them (each would change
    nothing) fail at the config, before the warm-up's 1,500 steps (which would otherwise run first)."""
    from saekit.cli import main

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the config was checked")

    monkeypatch.setattr(testbed, "induction_warmup_batch", no_training)
    shallow = ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=2)
    with pytest.raises(SaekitError, match="at least 3 layers"):
        testbed.train_testbed(testbed.TestbedConfig(model=shallow))
    with pytest.raises(SaekitError, match="at least 6 heads per layer"):
        testbed.TestbedConfig(model=ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_heads=5))
    with pytest.raises(SaekitError, match="must exceed the warm-up, pretraining and task-phase steps"):
        testbed.TestbedConfig(steps=1500)
    for group_size in (1, 13):
        with pytest.raises(SaekitError, match="task_group_size must be between 2"):
            testbed.TestbedConfig(task_group_size=group_size)
    with pytest.raises(SaekitError, match=r"task_group_size must be between 2 .* \(3\), got 4"):
        testbed.TestbedConfig(pairs_per_task={**dict.fromkeys(TASK_NAMES, 36), "ioi": 3})
    with pytest.raises(SaekitError, match="pairs_per_task needs every task"):
        testbed.TestbedConfig(pairs_per_task={"docstring": 36})
    with pytest.raises(SaekitError, match="strict_logits already matches .* leave strict_toward_clean off"):
        testbed.TestbedConfig(strict_logits=True, strict_toward_clean=True)
    with pytest.raises(SaekitError, match="strict_subset_share is a share"):
        testbed.TestbedConfig(strict_subsets=True, strict_subset_share=1.5)
    with pytest.raises(SaekitError, match=r"strict_one_head_share is a share .* got -0.1"):
        testbed.TestbedConfig(strict_one_head_share=-0.1)
    with pytest.raises(SaekitError, match=r"strict_subset_share \(0.5\) .* turn strict_subsets on"):
        testbed.TestbedConfig(strict_subset_share=0.5)
    for name, value in (("strict_one_head_beside", True), ("strict_one_head_adaptive", 0.5)):
        with pytest.raises(SaekitError, match=f"{name} acts on the one-head rows of strict_one_head_share, which is 0"):
            testbed.TestbedConfig(**{name: value})
    with pytest.raises(SaekitError, match=r"strict_one_head_adaptive is a share .* got 1.5"):
        testbed.TestbedConfig(strict_one_head_share=0.5, strict_one_head_adaptive=1.5)
    assert main(["zoo", "train", "--recipe", "testbed", "--steps", "1000", "--out", str(tmp_path / "tb")]) == 2
    assert "must exceed the warm-up" in capsys.readouterr().err


def test_task_phases_train_their_tasks_alone_then_every_task(monkeypatch):
    """The tasks of each of ``task_phases`` train alone (beside the generic text unless
    ``phase_generic`` is off) for its steps right after the warm-up, in the order given; then
    every task trains (the training log marks the tasks outside the phase idle); phases given as
    JSON lists equal those given as tuples; phases that would leave no step for all the tasks, a
    task that does not exist, a task twice, an empty phase or a phase of no steps are refused at
    the config."""
    config = replace(TINY_RUN, task_phases=((("induction", "docstring"), 1), (("greater-than",), 2)))
    assert replace(config, task_phases=[[["induction", "docstring"], 1], [["greater-than"], 2]]) == config
    assert [config.tasks_training(step) for step in range(6)] == [
        (), (), ("induction", "docstring"), ("greater-than",), ("greater-than",), TASK_NAMES,
    ]
    batches = []
    real_task_batch = testbed._task_batch
    monkeypatch.setattr(testbed, "_task_batch", lambda tokenizer, task, *rest: batches.append(task) or real_task_batch(tokenizer, task, *rest))
    # The measurement of effects outside draws batches of every task too; only the training ones count here.
    monkeypatch.setattr(testbed, "measured_outside_effects", lambda model, tokenizer, config, circuits, *rest: {
        task: torch.zeros(3, 6) for task in circuits})
    generic = []
    real_generic_batch = testbed.generic_batch
    monkeypatch.setattr(testbed, "generic_batch", lambda *args: generic.append(args) or real_generic_batch(*args))
    lines = []
    testbed.train_testbed(config, log=lines.append)
    assert batches == ["docstring", "induction", "greater-than", "greater-than", *TASK_NAMES * 3]
    assert len(generic) == 6, "generic text at every step after the warm-up"
    assert [line for line in lines if "largest effect outside" in line] == [
        "step 2: largest effect outside, training pairs: "
        "ioi 0.000 (0.0) idle  greater-than 0.000 (0.0) idle  docstring 0.000 (0.0)  induction 0.000 (0.0)"
    ], "measured as the first phase starts, the tasks outside it marked"
    batches.clear()
    generic.clear()
    testbed.train_testbed(replace(config, phase_generic=False), log=lambda *_: None)
    assert batches == ["docstring", "induction", "greater-than", "greater-than", *TASK_NAMES * 3]
    assert len(generic) == 3, "no generic text in the phases"
    with pytest.raises(SaekitError, match=r"must exceed the warm-up, pretraining and task-phase steps \(4500\)"):
        testbed.TestbedConfig(task_phases=[[["docstring"], 3000]])
    for phases in ([[["doc"], 10]], [[["docstring", "docstring"], 10]]):
        with pytest.raises(SaekitError, match="lists distinct tasks of ioi"):
            testbed.TestbedConfig(task_phases=phases)
    for phases in ([[[], 10]], [[["docstring"], 0]], [["docstring", 10]], [[["docstring"]]]):
        with pytest.raises(SaekitError, match=r"Each of task_phases is \(tasks, steps >= 1\)"):
            testbed.TestbedConfig(task_phases=phases)
    with pytest.raises(SaekitError, match="task_phases is a list"):
        testbed.TestbedConfig(task_phases={"docstring": 10})


def test_phase_behaviour_only_tasks_train_their_behaviour_alone_in_the_phases(monkeypatch):
    """A task of ``phase_behaviour_only`` gets no interchange or strictness loss (no
    `recipe_task_losses`) while it is in one of ``task_phases`` and the full losses after; the
    other tasks of its phase keep theirs; a task that does not exist is refused at the config."""
    config = replace(TINY_RUN, task_phases=((("induction", "docstring"), 2),), phase_behaviour_only=["induction"])
    assert config.phase_behaviour_only == ("induction",)
    full_losses = []
    real_losses = testbed.recipe_task_losses
    monkeypatch.setattr(testbed, "recipe_task_losses",
                        lambda model, config, task, *rest: full_losses.append(task) or real_losses(model, config, task, *rest))
    testbed.train_testbed(config, log=lambda *_: None)
    assert full_losses == ["docstring", "docstring", *TASK_NAMES * 4]
    with pytest.raises(SaekitError, match="phase_behaviour_only lists distinct tasks of ioi"):
        testbed.TestbedConfig(phase_behaviour_only=["inductions"])


def test_circuit_alone_takes_every_other_head_from_the_paired_negative(tokenizer, monkeypatch):
    """`circuit_alone_accuracy` runs the positives with exactly the heads outside the circuit
    patched, each from its paired negative's ``hook_z``; a circuit of every head is the model."""
    from saekit.tasks import make_task
    from saekit.zoo.evaluate import evaluate_task

    shape = TINY_RUN.model
    model = AttnOnlyTransformer(shape, seed=0).eval()
    task = make_task("induction", tokenizer, n_pairs=8, seed=0)
    every_head = [(layer, head, "role") for layer in range(shape.n_layers) for head in range(shape.n_heads)]
    assert testbed.circuit_alone_accuracy(model, task, every_head) == evaluate_task(model, task).pos_accuracy
    runs = []
    real_run = model.run_layers
    monkeypatch.setattr(model, "run_layers", lambda tokens, patches=None: runs.append((tokens, patches)) or real_run(tokens, patches))
    testbed.circuit_alone_accuracy(model, task, [(0, 1, "a"), (2, 4, "b")])
    (negatives, _), (positives, patches) = runs
    assert torch.equal(negatives, task.tokens("negative")) and torch.equal(positives, task.tokens("positive"))
    negative_z = real_run(negatives)[2]
    for layer, patch in enumerate(patches):
        outside = [head not in {0: [1], 2: [4]}.get(layer, []) for head in range(shape.n_heads)]
        assert patch.heads.tolist() == [outside] * len(positives)
        assert torch.equal(patch.z, negative_z[layer])


def test_training_log_gives_each_placed_circuit_alone(monkeypatch):
    """Once the circuits are placed, each evaluation's log line gives every task's circuit-alone
    accuracy (`circuit_alone_accuracy` of that task's circuit) beside the model's; before, none."""
    asked = []

    def alone(model, task, circuit):
        asked.append(circuit)
        return 0.25

    monkeypatch.setattr(testbed, "circuit_alone_accuracy", alone)
    lines = []
    _, circuits = testbed.train_testbed(replace(TINY_RUN, eval_every=2), log=lines.append)
    evaluations = [line for line in lines if " generic " in line]
    assert "/c" not in evaluations[0], "step 2 comes before the circuits are placed"
    for line in evaluations[1:]:
        assert all(f"{task} " in line and line.count("/c0.25") == len(TASK_NAMES) for task in TASK_NAMES)
    assert asked == [circuits[task] for task in TASK_NAMES] * (len(evaluations) - 1)


def test_a_run_started_again_from_its_checkpoint_ends_as_one_uninterrupted_run(tmp_path, monkeypatch):
    """A run interrupted at step 10, started again with the same file, continues from its
    checkpoint at step 9 and ends with the uninterrupted run's weights, bit for bit, and the
    same final log line (the loss history and the one-head draw's weights, measured at step
    3 only, come from the checkpoint; the optimizer restarted at step 3 is the saved one); a
    checkpoint of other settings or shape, one whose weights do not fit, a damaged file and no
    steps between checkpoints are refused before any training."""
    monkeypatch.setattr(testbed, "OUTSIDE_EFFECTS_EVERY", 10)
    config = replace(
        TINY_RUN, steps=12, induction_warmup_steps=2, pretrain_steps=1, restart_optimizer=True, warmup_steps=4,
        cooldown_steps=4, eval_every=5, strict_one_head_share=1.0, strict_one_head_adaptive=0.5,
    )
    assert config.tasks_start == 3
    whole_log, resumed_log = [], []
    whole, whole_circuits = testbed.train_testbed(config, log=whole_log.append)
    path = tmp_path / "run.pt"

    class Interrupted(Exception):
        pass

    def interrupt_after_step_10(step, model):
        if step == 10:
            raise Interrupted

    with pytest.raises(Interrupted):
        testbed.train_testbed(config, log=lambda *_: None, on_eval=interrupt_after_step_10, checkpoint=path, checkpoint_every=3)
    steps_run = []
    real_generic_batch = testbed.generic_batch
    monkeypatch.setattr(testbed, "generic_batch", lambda tokenizer, config, step: steps_run.append(step) or real_generic_batch(tokenizer, config, step))
    resumed, resumed_circuits = testbed.train_testbed(config, log=resumed_log.append, checkpoint=path, checkpoint_every=3)
    assert resumed_log[0] == f"resuming at step 9 from {path}" and steps_run == [9, 10, 11]
    assert resumed_circuits == whole_circuits
    assert all(torch.equal(value, resumed.state_dict()[name]) for name, value in whole.state_dict().items())
    assert resumed_log[-1] == whole_log[-1] and resumed_log[-1].startswith("step    12 generic")
    with pytest.raises(SaekitError, match=r"other settings \(seed differ\)\. Delete .*run\.pt to train from step 0"):
        testbed.train_testbed(replace(config, seed=1), checkpoint=path)
    with pytest.raises(SaekitError, match=r"other settings \(model differ\)"):
        testbed.train_testbed(replace(config, model=replace(config.model, d_model=32, d_head=8)), checkpoint=path)
    document = torch.load(path, weights_only=True)
    document["model"].pop(next(iter(document["model"])))  # as if written by a saekit with other weight names
    torch.save(document, path)
    with pytest.raises(SaekitError, match="weights do not fit this model"):
        testbed.train_testbed(config, checkpoint=path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(SaekitError, match="is not a saekit training checkpoint"):
        testbed.train_testbed(config, checkpoint=path)
    with pytest.raises(SaekitError, match="checkpoint_every must be 1 or more steps, got 0"):
        testbed.train_testbed(config, checkpoint=path, checkpoint_every=0)


def test_restart_optimizer_starts_a_new_one_when_the_tasks_join(monkeypatch):
    """With ``restart_optimizer``, a new AdamW (no moment estimates from the warm-up) starts at
    `tasks_start`, right after the circuits are placed, and the learning rate warms up again
    from there; without it one optimizer and one warm-up serve the whole run."""
    config = replace(TINY_RUN, induction_warmup_steps=3, warmup_steps=2, restart_optimizer=True)
    assert [testbed._testbed_learning_rate(config, step) / config.lr for step in range(8)] == [0.5, 1, 1, 0.5, 1, 1, 1, 1]
    assert [testbed._testbed_learning_rate(replace(config, restart_optimizer=False), step) / config.lr
            for step in range(8)] == [0.5, 1, 1, 1, 1, 1, 1, 1]
    events = []
    real_adamw = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW", lambda *args, **kwargs: events.append("optimizer") or real_adamw(*args, **kwargs))

    def log(line: str) -> None:
        if "circuits" in line:
            events.append("circuits")

    testbed.train_testbed(config, log=log)
    assert events == ["optimizer", "circuits", "optimizer"]
    events.clear()
    testbed.train_testbed(replace(config, restart_optimizer=False), log=log)
    assert events == ["optimizer", "circuits"]


def test_the_warm_up_adds_the_two_back_sequences_of_the_config(monkeypatch):
    """``induction_two_back`` sequences of at least ``induction_two_back_min_length`` words join
    every warm-up step's batch, each trained on its one word that copies from 2 back; none
    without them."""
    from saekit.zoo.train import induction_warmup_batch

    batches = []
    monkeypatch.setattr(testbed, "induction_warmup_batch",
                        lambda *args: batches.append(induction_warmup_batch(*args)) or batches[-1])
    config = replace(TINY_RUN, induction_two_back=3, induction_two_back_min_length=20)
    testbed.train_testbed(config)
    assert len(batches) == config.induction_warmup_steps
    for batch in batches:
        assert len(batch.tokens) == config.induction_warmup_batch + 3
        two_back = batch.targets[config.induction_warmup_batch:].sum(-1)
        assert two_back.sum(-1).tolist() == [1.0] * 3
        # BOS, the sequence, then its last two words: the trained word sits at the sequence's length + 1.
        assert all(position >= 20 + 1 for position in two_back.nonzero()[:, 1].tolist())
    batches.clear()
    testbed.train_testbed(TINY_RUN)
    assert [len(batch.tokens) for batch in batches] == [TINY_RUN.induction_warmup_batch] * TINY_RUN.induction_warmup_steps


def test_zoo_check_gives_the_card_of_a_model_with_roles(tmp_path, monkeypatch, capsys):
    """A folder whose ground truth records roles gets the test-bed card in `zoo check`, with its
    heads in role order; its ground truth answers for the folder's path; the tasks built for it
    take the IOI negative it was trained on."""
    import json

    from saekit import load_model
    from saekit.cli import main
    from saekit.tasks import make_task
    from saekit.tasks.ground_truth import ground_truth_heads, ground_truth_roles
    from saekit.zoo.evaluate import check_toy_model

    out = tmp_path / "tb"
    command = ["zoo", "train", "--recipe", "testbed", "--steps", "2", "--warmup-steps", "1", "--set", 'ioi_negative="giver"']
    assert main([*command, "--out", str(out)]) == 0
    giver = make_task("ioi", build_toy_tokenizer(TESTBED_VOCABULARY, {"ioi": "giver"}), 12)
    assert torch.equal(make_task("ioi", load_model(out), 12).negative_tokens, giver.negative_tokens)
    truth = json.loads((out / "ground_truth.json").read_text())["tasks"]
    circuits = {task: [(*head, role) for head, role in zip(c["heads"], c["roles"])] for task, c in truth.items()}
    assert ground_truth_heads(str(out), "ioi") == {(l, h) for l, h, _ in circuits["ioi"]}
    assert ground_truth_roles(str(out), "ioi") == {(l, h): role for l, h, role in circuits["ioi"]}
    report = check_toy_model(str(out), n_pairs=12)
    card = report["tasks"]["induction"]["card"]
    assert card["heads"] == [[l, h] for l, h, _ in circuits["induction"]]
    assert card["roles"] == ["previous-token", "duplicate-token", "induction"]
    assert card["circuit_share"] == 3 / 32
    measures = {"faithfulness", "faithfulness_circuit_ablated", "ablated_all_share", "interchange_accuracy", "max_effect_outside"}
    assert measures <= set(card)
    assert set(card["premise_auc"]) == {"head_norm", "layer_index", "mean_difference", "d_prime", "probe"}
    assert all(0 <= auc <= 1 for auc in card["premise_auc"].values())
    assert set(card["causal_auc"]) == {"activation_patching", "acdc"}
    assert all(auc is None or 0 <= auc <= 1 for auc in card["causal_auc"].values())
    assert card["bars"]["share"] is True and card["bars"]["distinct"] is True and len(card["bars"]) == 13
    assert report["n_pairs"] == 12
    assert card["max_effect_outside_head"] not in card["heads"] and card["max_effect_outside_se"] >= 0
    with pytest.raises(SaekitError, match="standard errors need at least 2 pairs"):
        check_toy_model(str(out), n_pairs=1)
    capsys.readouterr()
    assert main(["zoo", "check", "--model", str(out), "--pairs", "1"]) == 2
    assert "standard errors need at least 2 pairs" in capsys.readouterr().err
    asked = []
    monkeypatch.setattr("saekit.zoo.evaluate.check_toy_model", lambda model, n_pairs: asked.append(n_pairs) or report)
    assert main(["zoo", "check", "--model", str(out), "--pairs", "12"]) == 0
    assert asked == [12]
    text = capsys.readouterr().out
    assert f"{card['max_effect_outside']:.3f} ± {card['max_effect_outside_se']:.3f} {card['outside_noise_floor']:>6.3f}" in text
    unresolved = "induction: the outside bar is not resolved at 12 pairs (noise floor"
    assert (unresolved in text) == (card["outside_noise_floor"] > 0.02)
    missed = [bar for bar, met in card["bars"].items() if met is False]
    assert f"induction      {', '.join(missed) or 'none'}\n" in text.split("bars missed")[1]
    shares = {name: row["card"]["ablated_all_share"].values() for name, row in report["tasks"].items()}
    short = {name for name, values in shares.items() if not all(share is not None and share >= 0.8 for share in values)}
    assert short and short != set(shares)  # the untrained model's heads carry some tasks' gaps and not others
    assert {name for name in shares if f"{name}: ablating every head removes" in text} == short


@pytest.fixture
def stop_training(monkeypatch):
    """Call it to make `saekit zoo train` stop (SaekitError) where training would start; the call
    returns the list of configs handed to training from then on."""

    def install() -> list:
        configs = []

        def record_and_stop(config, *args, **kwargs):
            configs.append(config)
            raise SaekitError("stopped before training")

        monkeypatch.setattr(testbed, "train_testbed", record_and_stop)
        return configs

    return install


def test_zoo_train_like_a_folder_retrains_the_model_it_holds(tmp_path, capsys, stop_training):
    """`saekit zoo train --like FOLDER` takes the recipe, shape and every setting from FOLDER's
    config.json, those without a flag included: retraining gives the same weights bit for bit, a
    flag overrides its setting, and a record that is not a saekit recipe's is refused by name."""
    import json

    from safetensors.torch import load_file

    from saekit.cli import main
    from saekit.errors import ModelError

    first, again = tmp_path / "first", tmp_path / "again"
    command = ["zoo", "train", "--recipe", "testbed", "--steps", "3", "--warmup-steps", "1", "--pretrain-steps", "1"]
    assert main([*command, "--seed", "5", "--out", str(first)]) == 0
    assert main(["zoo", "train", "--like", str(first), "--out", str(again)]) == 0
    weights, retrained = load_file(first / "model.safetensors"), load_file(again / "model.safetensors")
    assert weights.keys() == retrained.keys() and all(torch.equal(weights[key], retrained[key]) for key in weights)
    expected = testbed.TestbedConfig(seed=5, steps=3, induction_warmup_steps=1, pretrain_steps=1)
    assert testbed.recorded_config(first) == testbed.recorded_config(again) == expected

    odd = testbed.TestbedConfig(
        seed=3, strict_toward_clean=True, answer_smoothing={"greater-than": 0.02},
        model=ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=3, n_heads=8, d_model=32, d_head=8),
    )
    testbed.save_testbed(AttnOnlyTransformer(odd.model, seed=3), odd, draw_circuits(3, 8, 3), tmp_path / "odd", "odd")
    assert testbed.recorded_config(tmp_path / "odd") == odd
    started = stop_training()
    assert main(["zoo", "train", "--like", str(tmp_path / "odd"), "--seed", "7", "--out", str(again)]) == 2
    assert started == [replace(odd, seed=7)]

    assert main(["zoo", "train", "--like", str(first), "--recipe", "toy", "--out", str(again)]) == 2
    assert "trained by the testbed recipe" in capsys.readouterr().err
    assert main(["zoo", "train", "--like", str(first)]) == 2
    assert "needs --out" in capsys.readouterr().err
    document = json.loads((first / "config.json").read_text())
    (first / "config.json").write_text(json.dumps({**document, "training": {**document["training"], "stepz": 1}}))
    with pytest.raises(ModelError, match="neither the toy recipe's nor the test-bed's"):
        testbed.recorded_config(first)
    (first / "config.json").write_text(json.dumps({"tl_config": document["tl_config"]}))
    with pytest.raises(ModelError, match="records no training settings"):
        testbed.recorded_config(first)


def test_zoo_train_set_reaches_every_setting_and_checks_it_before_training(tmp_path, capsys, stop_training):
    """`--set FIELD=VALUE` (JSON) sets a setting that has no flag, the shape included; a named
    flag wins over it; an unknown field, bad JSON or a value of the wrong type stops the command
    before training."""
    from saekit.cli import main

    started = stop_training()
    command = ["zoo", "train", "--recipe", "testbed", "--out", str(tmp_path / "tb")]
    settings = ["strict_toward_clean=true", 'answer_smoothing={"greater-than": 0.02}', "weight_decay=0", "seed=4",
                'model={"n_layers": 6, "n_heads": 16, "d_head": 4}',
                'pairs_per_task={"ioi": 12, "greater-than": 12, "docstring": 36, "induction": 12}',
                'task_phases=[[["docstring", "induction"], 1000]]']
    assert main([*command, *(f"--set={setting}" for setting in settings), "--seed", "9"]) == 2
    default = testbed.TestbedConfig()
    assert started == [replace(default, strict_toward_clean=True, answer_smoothing={"greater-than": 0.02}, weight_decay=0.0, seed=9,
                               model=replace(default.model, n_layers=6, n_heads=16, d_head=4),
                               pairs_per_task={**default.pairs_per_task, "docstring": 36},
                               task_phases=((("docstring", "induction"), 1000),))]
    assert isinstance(started[0].weight_decay, float)  # an integer given for a float setting is read as one
    for setting, message in [
        ("strict_towards_clean=true", "did you mean 'strict_toward_clean'"),
        ("strict_toward_clean", "has no '='"),
        ("strict_toward_clean=yes", "is not valid JSON"),
        ("strict_toward_clean=1", "takes true or false"),
        ("steps=4500.5", "takes an integer"),
        ('model={"n_layers": "6"}', "model.n_layers takes an integer"),
        ('model={"layers": 6}', "did you mean 'n_layers'"),
        ('model={"d_vocab": 400}', "cannot change d_vocab"),
        ("answer_smoothing=0.02", "takes a JSON object"),
        ('answer_smoothing={"greater_than": 0.02}', "['greater_than'] is not one"),
        ('answer_smoothing={"greater-than": 1.5}', "takes a share in [0, 1) per task"),
        ('pairs_per_task={"docstring": 36}', "pairs_per_task needs every task"),
        ('task_phases={"docstring": 1000}', "task_phases takes a JSON array"),
        ('task_phases=[["docstring", 1000]]', "Each of task_phases is (tasks, steps >= 1)"),
        ('ioi_negative="first"', "Unknown ioi negative 'first'"),
        ('induction_negative="first"', "Unknown induction negative 'first'"),
    ]:
        assert main([*command, "--set", setting]) == 2, setting
        assert message in capsys.readouterr().err, setting
    assert len(started) == 1


def test_zoo_train_device_is_checked_before_training(tmp_path, capsys, monkeypatch):
    """`--device` reaches test-bed training; a device this machine lacks, an unknown one, or a
    device for the toy recipe (CPU only) stops the command before training starts."""
    from saekit.cli import main

    devices = []

    def record_and_stop(config, device, **kwargs):
        devices.append(device)
        raise SaekitError("stopped before training")

    monkeypatch.setattr(testbed, "train_testbed", record_and_stop)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    command = ["zoo", "train", "--out", str(tmp_path / "tb")]
    for extra, message in [
        (["--recipe", "testbed", "--device", "cuda"], "sees no CUDA GPU"),
        (["--recipe", "testbed", "--device", "gpu"], "Unknown device 'gpu'"),
        (["--device", "cuda"], "--device belongs to --recipe testbed"),
        (["--recipe", "testbed"], "stopped before training"),
    ]:
        assert main([*command, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert devices == ["cpu"]


def test_copy_documents_reward_induction_and_no_period():
    """After its first sequence a copy document is stretches of it from random starts: the word
    after a word's earlier occurrence usually comes next (induction works), while the distance to
    that occurrence changes within a document (a period does not)."""
    from saekit.zoo.language import copy_document

    rng = np.random.default_rng(0)
    induction_right, periodic = [], []
    for _ in range(200):
        words = copy_document(rng, 40)
        length = next(i for i, w in enumerate(words) if w in words[:i])  # the first sequence's length
        assert len(set(words[:length])) == length and set(words) == set(words[:length])
        offsets = {i - words.index(words[i]) for i in range(length, 40)}
        periodic.append(len(offsets) == 1)
        induction_right += [words[words.index(words[i]) + 1] == words[i + 1] for i in range(length, 39)]
    assert 0.5 < np.mean(induction_right) < 1  # stretch ends break it, nothing else does
    assert np.mean(periodic) < 0.05


def test_induction_roles_go_to_the_heads_whose_attention_does_them(monkeypatch):
    """On a model whose head 0.3 attends to the previous word, head 0.6 to the current word's
    previous occurrence and head 1.5 to that occurrence's successor, those three get the roles;
    better heads outside the layers of the roles' stages (a previous-token head in layer 3, a
    duplicate-token head in layer 2, an induction head in layer 2) are passed over, and so is the
    previous-token head for the duplicate-token role."""
    model = AttnOnlyTransformer(ToyModelConfig(d_vocab=20, n_layers=4, n_heads=8, n_ctx=16))
    tokens = torch.tensor([[0, 5, 6, 7, 8, 6, 7, 8, 5, 6]])
    n = tokens.shape[1]
    uniform = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]
    patterns = uniform.expand(4, 1, 8, n, n).clone()
    previous_word = torch.eye(n).roll(-1, 1).tril()
    previous_word[0, 0] = 1.0
    occurrence, successor = torch.zeros(n, n), torch.zeros(n, n)
    for i in range(n):
        earlier = [j for j in range(i) if tokens[0, j] == tokens[0, i]]
        occurrence[i, earlier[-1] if earlier else 0] = 1.0
        successor[i, earlier[-1] + 1 if earlier else 0] = 1.0
    patterns[0, 0, 3] = 0.9 * previous_word + 0.1 * uniform
    patterns[0, 0, 6] = 0.8 * occurrence + 0.2 * uniform
    patterns[3, 0, 1] = previous_word
    patterns[1, 0, 5] = 0.9 * successor + 0.1 * uniform
    patterns[2, 0, 6] = successor
    patterns[2, 0, 2] = occurrence
    monkeypatch.setattr(model, "attention_patterns", lambda tokens: patterns)
    scores = testbed.copy_head_scores(model, tokens)
    assert scores.previous[3, 1] == scores.previous.max() == 1.0 and scores.induction[2, 6] == scores.induction.max() == 1.0
    assert scores.duplicate[2, 2] == scores.duplicate.max() == 1.0
    assert scores.previous[0, 3] == scores.previous[0].max() > 0.9 and scores.induction[1, 5] == scores.induction[1].max() > 0.9
    assert scores.duplicate[0, 6] == scores.duplicate[0].max() > 0.8
    assert testbed.place_by_attention(model, tokens) == [(0, 3, "previous-token"), (0, 6, "duplicate-token"), (1, 5, "induction")]
    patterns[0, 0, 3] = 0.5 * previous_word + 0.5 * occurrence  # the previous-token head is now the best duplicate one
    patterns[0, 0, 6] = 0.4 * occurrence + 0.6 * uniform
    scores = testbed.copy_head_scores(model, tokens)
    assert scores.duplicate[0].argmax() == 3 and scores.previous[0].argmax() == 3
    assert testbed.place_by_attention(model, tokens)[:2] == [(0, 3, "previous-token"), (0, 6, "duplicate-token")]
    placed = testbed.place_by_attention(model, tokens, taken=frozenset({(0, 3), (1, 5)}))
    assert placed[1] == (0, 6, "duplicate-token") and not {(0, 3), (1, 5)} & {(l, h) for l, h, _ in placed}


def test_attention_patterns_are_those_transformer_lens_computes(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    from saekit import _tl

    cfg = ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY), n_layers=2, n_heads=4, d_model=32, d_head=8, n_ctx=16)
    module = AttnOnlyTransformer(cfg, seed=1).eval()
    tokens = torch.randint(3, cfg.d_vocab, (3, 10), generator=torch.Generator().manual_seed(0))
    tokenizer.save_pretrained(tmp_path)
    model = _tl.build_from_state_dict(cfg.tl_config(), module.state_dict(), AutoTokenizer.from_pretrained(tmp_path), "cpu")
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    expected = torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(2)])
    torch.testing.assert_close(module.attention_patterns(tokens), expected, atol=1e-5, rtol=1e-5)


def test_fixed_roles_are_kept_and_the_other_circuits_drawn_around_them():
    fixed = {"induction": [(0, 3, "previous-token"), (2, 5, "induction")]}
    circuits = draw_circuits(4, 8, seed=0, fixed=fixed)
    assert list(circuits) == list(TASK_NAMES) and circuits["induction"] == fixed["induction"]
    heads = [(l, h) for placed in circuits.values() for l, h, _ in placed]
    assert len(set(heads)) == len(heads)
    assert draw_circuits(4, 8, seed=0, fixed=fixed) == circuits


def test_docstring_mover_and_ioi_can_share_the_induction_circuit(tokenizer, monkeypatch):
    """With ``mover_on_induction_head`` docstring's argument mover is the induction head; with
    ``ioi_on_induction_heads`` IOI's circuit gains the previous-token and induction heads in the
    stages of their layers, its name mover still last, and with ``docstring_on_previous_token_head``
    docstring's gains the previous-token head before its mover; every other role keeps its drawn head."""
    induction = [(0, 3, "previous-token"), (0, 6, "duplicate-token"), (1, 5, "induction")]
    monkeypatch.setattr(testbed, "place_by_attention", lambda model, tokens, taken=frozenset(): induction)
    model = AttnOnlyTransformer(ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY)))
    drawn = testbed.place_circuits(model, tokenizer, seed=0)
    shared = testbed.place_circuits(model, tokenizer, seed=0, mover_on_induction_head=True)
    assert shared["docstring"] == [*drawn["docstring"][:2], (1, 5, "argument-mover")] != drawn["docstring"]
    assert {task: heads for task, heads in shared.items() if task != "docstring"} == {
        task: heads for task, heads in drawn.items() if task != "docstring"
    }
    with_ioi = testbed.place_circuits(model, tokenizer, seed=0, ioi_on_induction_heads=True)
    (dup, s_inhibition, mover) = drawn["ioi"]
    assert with_ioi["ioi"] == [dup, (0, 3, "previous-token"), s_inhibition, (1, 5, "induction"), mover]
    assert {task: heads for task, heads in with_ioi.items() if task != "ioi"} == {
        task: heads for task, heads in drawn.items() if task != "ioi"
    }
    both = testbed.place_circuits(model, tokenizer, seed=0, mover_on_induction_head=True, docstring_on_previous_token_head=True)
    (previous_argument, parameter_mover, _) = drawn["docstring"]
    assert both["docstring"] == [previous_argument, parameter_mover, (0, 3, "previous-token"), (1, 5, "argument-mover")]
    assert {task: heads for task, heads in both.items() if task != "docstring"} == {
        task: heads for task, heads in drawn.items() if task != "docstring"
    }


def test_fixed_circuits_put_roles_on_the_heads_given_and_the_rest_around_them(tokenizer, monkeypatch):
    """A task of ``fixed_circuits`` keeps its heads (IOI's shared heads still added), the induction
    roles are placed by attention among the heads no fixed task holds, and the config refuses a
    list that does not give one head per role in the layer of its stage, or a head twice."""
    config = testbed.TestbedConfig(fixed_circuits={"ioi": [[0, 5], [1, 2], [2, 6]]})
    assert config.fixed_circuits == {"ioi": ((0, 5), (1, 2), (2, 6))}
    offered = []

    def by_attention(model, tokens, taken=frozenset()):
        offered.append(taken)
        return [(0, 3, "previous-token"), (0, 6, "duplicate-token"), (1, 5, "induction")]

    monkeypatch.setattr(testbed, "place_by_attention", by_attention)
    model = AttnOnlyTransformer(ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY)))
    circuits = testbed.place_circuits(model, tokenizer, seed=0, ioi_on_induction_heads=True, fixed=config.fixed_circuits)
    assert circuits["ioi"] == [
        (0, 5, "duplicate-token"), (0, 3, "previous-token"), (1, 2, "s-inhibition"), (1, 5, "induction"), (2, 6, "name-mover"),
    ]
    assert offered == [frozenset({(0, 5), (1, 2), (2, 6)})]
    others = [(l, h) for task in ("greater-than", "docstring") for l, h, _ in circuits[task]]
    assert not set(others) & {(0, 5), (1, 2), (2, 6), (0, 3), (0, 6), (1, 5)} and len(set(others)) == len(others)
    for fixed in (
        {"ioi": [[0, 5], [1, 2]]},  # a role without a head
        {"ioi": [[0, 5], [2, 2], [1, 6]]},  # stages out of their layers
        {"ioi": [[0, 5], [1, 8], [2, 6]]},  # no head 8 in a layer of 8
        {"docstring": [[0, 7], [0, 7], [1, 5]]},  # one head for two roles of a stage
        {"ioi": [[0, 5], [1, 2], [2, 6]], "greater-than": [[0, 5], [1, 3]]},  # 0.5 twice
        {"io": [[0, 5], [1, 2], [2, 6]]},
    ):
        with pytest.raises(SaekitError, match="fixed_circuits"):
            testbed.TestbedConfig(fixed_circuits=fixed)


def test_learning_rate_falls_to_zero_over_the_cooldown_only():
    config = testbed.TestbedConfig(steps=2000, cooldown_steps=400)
    rate = [testbed._testbed_learning_rate(config, step) for step in range(2000)]
    assert rate[149] == rate[1600] == config.lr, "warm-up done, cooldown not begun"
    assert rate[1601] < config.lr and rate[-1] == pytest.approx(config.lr / 400)
    assert all(later < earlier for earlier, later in zip(rate[1600:], rate[1601:]))
    constant = testbed.TestbedConfig(steps=2000, cooldown_steps=0)
    assert testbed._testbed_learning_rate(constant, 1999) == config.lr
    with pytest.raises(SaekitError, match="cooldown_steps"):
        testbed.TestbedConfig(cooldown_steps=-1)
