"""Ablation and patching at hook_z: exact properties on a tiny random GPT-2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from saekit.ablation import (
    AblationKind,
    ablation_runs,
    circuit_table,
    evaluate_circuit,
    faithfulness,
    faithfulness_curves,
    final_residual,
    head_mask,
    head_patching_effects,
    head_patching_prompt_effects,
    heads_from_mask,
    hook_z_name,
    kl_faithfulness,
    prune_heads,
    random_head_masks,
    scored_tokens,
    unembed,
)
from saekit.errors import HeadSetError, TaskError
from saekit.tasks import compute_metric, task_from_strings

NAMES = [" Mary", " John", " Tom", " Anna", " Paul", " Kate"]


@pytest.fixture
def one_thread():
    """Small models: a thread pool only slows their tiny matmuls on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_task(gpt2_tokenizer):
    """IOI-like pairs: the negative swaps the repeated name for a third one (same length)."""
    positives, negatives, answers, wrongs, templates = [], [], [], [], []
    for i in range(6):
        a, b, c = NAMES[i], NAMES[(i + 1) % 6], NAMES[(i + 2) % 6]
        if i % 2 == 0:
            positives.append(f"When{a} and{b} went out,{b} gave it to")
            negatives.append(f"When{a} and{c} went out,{b} gave it to")
        else:
            positives.append(f"Then{a} and{b} had a drink at the bar,{b} gave it to")
            negatives.append(f"Then{a} and{c} had a drink at the bar,{b} gave it to")
        answers.append(a)
        wrongs.append(b)
        templates.append(i % 2)
    return task_from_strings(
        gpt2_tokenizer, "tiny-ioi", positives, negatives, answers, wrongs, template_ids=templates
    )


def _metric_of(model, task, tokens):
    with torch.no_grad():
        return task.metric_from_logits(model(tokens))


@pytest.fixture(scope="module")
def naive_patching(tiny_gpt2, tiny_task):
    """One head at a time, the obvious way: the reference the batched version must match (per
    head and prompt)."""
    model, task = tiny_gpt2, tiny_task
    _, cache = model.run_with_cache(task.negative_tokens)
    clean = _metric_of(model, task, task.positive_tokens)
    effects = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, len(clean))
    for layer in range(model.cfg.n_layers):
        negative_z = cache[hook_z_name(layer)]
        for head in range(model.cfg.n_heads):

            def patch(z, hook, head=head, negative_z=negative_z):
                z = z.clone()
                z[:, :, head] = negative_z[:, :, head]
                return z

            with model.hooks(fwd_hooks=[(hook_z_name(layer), patch)]):
                effects[layer, head] = _metric_of(model, task, task.positive_tokens) - clean
    return effects


@pytest.mark.parametrize("batch_size", [4, 64])
def test_patching_matches_one_head_at_a_time(tiny_gpt2, tiny_task, naive_patching, batch_size):
    # batch_size 4 splits the prompts; 64 stacks several heads into one forward pass.
    effects = head_patching_effects(tiny_gpt2, tiny_task, batch_size=batch_size)
    expected = naive_patching.mean(-1)
    assert effects.shape == (2, 4)
    assert effects.abs().max() > 1e-4, "patching should move the metric of a random model"
    torch.testing.assert_close(effects, expected, atol=1e-4, rtol=1e-4)
    prompt_effects = head_patching_prompt_effects(tiny_gpt2, tiny_task, batch_size=batch_size)
    assert prompt_effects.shape == (2, 4, tiny_task.n_pairs)
    torch.testing.assert_close(prompt_effects, naive_patching, atol=1e-4, rtol=1e-4)


def test_head_with_identical_z_has_zero_effect(tmp_path, tiny_gpt2_dir, tiny_task):
    """A head whose value weights are zero has the same z (zero) on every prompt: effect 0."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from saekit import load_model

    hf = GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir)
    d_model, d_head = hf.config.n_embd, hf.config.n_embd // hf.config.n_head
    value = slice(2 * d_model + 1 * d_head, 2 * d_model + 2 * d_head)  # layer 0, head 1 values
    with torch.no_grad():
        hf.transformer.h[0].attn.c_attn.weight[:, value] = 0
        hf.transformer.h[0].attn.c_attn.bias[value] = 0
    hf.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_gpt2_dir).save_pretrained(tmp_path)
    model = load_model(tmp_path)
    effects = head_patching_effects(model, tiny_task)
    assert effects[0, 1].abs() < 1e-6
    assert (effects.flatten().abs() > 1e-4).sum() >= 4


def test_resampling_every_head_gives_the_negative_run(tiny_gpt2, tiny_task):
    """With every head's z from the negative, the answer position holds the negative's residual.

    Embeddings and MLPs act position by position, and the last token is the same in both
    prompts, so layer by layer the answer position's residual equals the negative's: the metric
    must equal the negative run's exactly (for every prompt, not just on average).
    """
    keep_none = torch.zeros(1, 2, 4, dtype=torch.bool)
    runs = ablation_runs(tiny_gpt2, tiny_task, keep_none, AblationKind.RESAMPLE)
    negative = _metric_of(tiny_gpt2, tiny_task, tiny_task.negative_tokens)
    torch.testing.assert_close(runs.metric[0], negative, atol=1e-4, rtol=1e-4)
    assert (runs.metric[0] - runs.clean_metric).abs().max() > 1e-3


def test_keeping_every_head_is_the_full_model(tiny_gpt2, tiny_task):
    keep_all = torch.ones(2, 2, 4, dtype=torch.bool)
    for kind in AblationKind:
        runs = ablation_runs(tiny_gpt2, tiny_task, keep_all, kind, batch_size=12)
        torch.testing.assert_close(runs.metric, runs.clean_metric.expand(2, -1))
        assert runs.kl.abs().max() < 1e-5


def test_mean_ablation_uses_per_template_position_means(tiny_gpt2, tiny_task):
    """Mean ablation of one head equals patching in its mean negative z of that template."""
    keep = torch.ones(1, 2, 4, dtype=torch.bool)
    keep[0, 1, 2] = False
    runs = ablation_runs(tiny_gpt2, tiny_task, keep, "mean", batch_size=4)
    _, cache = tiny_gpt2.run_with_cache(tiny_task.negative_tokens)
    negative_z = cache[hook_z_name(1)][:, :, 2]
    expected = torch.empty(tiny_task.n_pairs)
    for template in (0, 1):
        rows = (tiny_task.template_ids == template).nonzero().flatten()
        part = tiny_task.subset(rows)
        seq = int(part.lengths.max())
        mean_z = negative_z[rows, :seq].mean(0)

        def patch(z, hook, mean_z=mean_z):
            z = z.clone()
            z[:, :, 2] = mean_z
            return z

        with tiny_gpt2.hooks(fwd_hooks=[(hook_z_name(1), patch)]):
            expected[rows] = _metric_of(tiny_gpt2, part, part.positive_tokens)
    torch.testing.assert_close(runs.metric[0], expected, atol=1e-4, rtol=1e-4)


def test_zero_ablation_zeroes_the_ablated_heads(tiny_gpt2, tiny_task):
    keep = torch.ones(1, 2, 4, dtype=torch.bool)
    keep[0, 0, :] = False
    runs = ablation_runs(tiny_gpt2, tiny_task, keep, AblationKind.ZERO)

    def zero_layer(z, hook):
        return torch.zeros_like(z)

    with tiny_gpt2.hooks(fwd_hooks=[(hook_z_name(0), zero_layer)]):
        expected = _metric_of(tiny_gpt2, tiny_task, tiny_task.positive_tokens)
    torch.testing.assert_close(runs.metric[0], expected, atol=1e-4, rtol=1e-4)


def test_hooks_are_removed_after_an_exception(tiny_gpt2, tiny_task, monkeypatch):
    """An error raised inside an ablation hook, mid-forward, leaves no hook behind."""
    import saekit.ablation

    class FailingTorch:
        """torch as saekit.ablation sees it, except that the ablation hook's torch.where fails."""

        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def where(*args, **kwargs):
            raise RuntimeError("injected failure inside the hook")

    clean = _metric_of(tiny_gpt2, tiny_task, tiny_task.positive_tokens)
    monkeypatch.setattr(saekit.ablation, "torch", FailingTorch())
    with pytest.raises(RuntimeError, match="injected"):
        ablation_runs(tiny_gpt2, tiny_task, torch.zeros(1, 2, 4, dtype=torch.bool), AblationKind.ZERO)
    monkeypatch.undo()
    torch.testing.assert_close(_metric_of(tiny_gpt2, tiny_task, tiny_task.positive_tokens), clean)


# ---------------------------------------------------------------------------------------------
# Head sets
# ---------------------------------------------------------------------------------------------


def test_head_formats_agree():
    expected = torch.zeros(3, 4, dtype=torch.bool)
    expected[0, 1] = expected[2, 3] = True
    assert torch.equal(head_mask([(0, 1), (2, 3)], 3, 4), expected)
    assert torch.equal(head_mask(["0.1", " 2.3"], 3, 4), expected)
    assert torch.equal(head_mask(frozenset({(0, 1), (2, 3)}), 3, 4), expected)
    assert torch.equal(head_mask(expected, 3, 4), expected)
    assert torch.equal(head_mask(expected.numpy(), 3, 4), expected)
    assert heads_from_mask(expected) == [(0, 1), (2, 3)]


@pytest.mark.parametrize(
    ("heads", "fix"),
    [
        ([], "empty"),
        (torch.zeros(3, 4, dtype=torch.bool), "empty"),
        ([(3, 0)], "outside a model"),
        (["0.4"], "outside a model"),
        ([(-1, 0)], "outside a model"),
        (["9-9"], "'layer.head'"),
        ([(1, 2, 3)], "(layer, head) pairs"),
        ([(1.0, 2)], "(layer, head) pairs"),
        ("0.1", "(layer, head) pairs"),
        (torch.ones(4, 3, dtype=torch.bool), "shape [3, 4]"),
        (np.ones((3, 4)), "must be boolean"),
        (7, "(layer, head) pairs"),
    ],
)
def test_bad_head_sets_raise_naming_the_fix(heads, fix):
    with pytest.raises(HeadSetError, match=fix.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        head_mask(heads, 3, 4)


def test_bad_keep_mask_and_kind_raise(tiny_gpt2, tiny_task):
    with pytest.raises(HeadSetError, match=r"\[n_circuits, 2, 4\]"):
        ablation_runs(tiny_gpt2, tiny_task, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TaskError, match="Unknown ablation"):
        ablation_runs(tiny_gpt2, tiny_task, torch.ones(1, 2, 4, dtype=torch.bool), "gaussian")


# ---------------------------------------------------------------------------------------------
# Circuit evaluation, table 4, faithfulness curves
# ---------------------------------------------------------------------------------------------


def test_whole_model_as_circuit_is_fully_faithful(tiny_gpt2, tiny_task):
    everything = torch.ones(2, 4, dtype=torch.bool)
    result, ends = evaluate_circuit(tiny_gpt2, tiny_task, everything, AblationKind.RESAMPLE)
    assert result.n_heads == 8 and result.metric == pytest.approx(ends.full, abs=1e-5)
    assert result.faithfulness == pytest.approx(1.0, abs=1e-4)
    assert result.kl == pytest.approx(0.0, abs=1e-6) and result.kl_faithfulness == pytest.approx(1.0)
    negative = _metric_of(tiny_gpt2, tiny_task, tiny_task.negative_tokens).mean()
    assert ends.ablated_all == pytest.approx(float(negative), abs=1e-4)
    assert ends.ablated_all_kl > 0


def test_faithfulness_formulas():
    assert faithfulness(2.0, full=3.0, ablated_all=-1.0) == pytest.approx(0.75)
    assert math.isnan(faithfulness(1.0, full=1.0, ablated_all=1.0))
    assert kl_faithfulness(0.5, 2.0) == pytest.approx(0.75)


def test_evaluate_circuits_gives_each_circuit_what_evaluate_circuit_does(tiny_gpt2, tiny_task):
    """Several circuits in one run: each one's metric, faithfulness and KL, and the shared ends,
    as one run per circuit gives them, in the order given (a circuit given twice included)."""
    from saekit.ablation import evaluate_circuits

    circuits = [["1.2", "1.3"], [(0, 0)], ["1.2", "1.3"], [(0, 1), (1, 0), (1, 1)]]
    for kind in ("mean", "resample"):
        results, ends = evaluate_circuits(tiny_gpt2, tiny_task, circuits, kind)
        for heads, result in zip(circuits, results, strict=True):
            single, single_ends = evaluate_circuit(tiny_gpt2, tiny_task, heads, kind)
            assert result.heads == single.heads
            for measure in ("metric", "faithfulness", "kl", "kl_faithfulness"):
                assert getattr(result, measure) == pytest.approx(getattr(single, measure), abs=1e-5), measure
        assert ends.full == pytest.approx(single_ends.full) and ends.ablated_all == pytest.approx(single_ends.ablated_all)


def test_circuit_table_is_consistent_and_serialisable(tiny_gpt2, tiny_task):
    scores = torch.arange(8.0).view(2, 4)  # layer 1 heads score highest
    table = circuit_table(tiny_gpt2, tiny_task, scores, ground_truth=["0.0", "0.1"], n_random=3, seed=5)
    assert table.found_circuit.heads == [(1, 2), (1, 3)]
    assert table.ground_truth_circuit.heads == [(0, 0), (0, 1)]
    assert table.random_circuit.n_heads == 2 and table.random_circuit.seeds == [5, 6, 7]
    single, ends = evaluate_circuit(tiny_gpt2, tiny_task, [(1, 2), (1, 3)])
    assert table.found_circuit.metric == pytest.approx(single.metric, abs=1e-5)
    assert table.full == pytest.approx(ends.full) and table.ablated_all == pytest.approx(ends.ablated_all)
    draws = random_head_masks(2, 4, 2, [5, 6, 7])
    assert torch.equal(draws, random_head_masks(2, 4, 2, [5, 6, 7]))
    assert (draws.sum((1, 2)) == 2).all()
    assert table.random_circuit.metric_mean == pytest.approx(np.mean(table.random_circuit.metrics))
    json.loads(json.dumps(table.to_dict()))
    by_threshold = circuit_table(tiny_gpt2, tiny_task, scores, threshold=6.0, n_random=1)
    assert by_threshold.found_circuit.heads == [(1, 2), (1, 3)] and by_threshold.ground_truth_circuit is None


#: Prunes some heads of the tiny random GPT-2 but not all (checked in the test).
PRUNING_THRESHOLD = 0.1


def test_pruning_matches_ablating_one_head_at_a_time_from_the_last_layer(tiny_gpt2, tiny_task):
    pruned = prune_heads(tiny_gpt2, tiny_task, PRUNING_THRESHOLD)
    kept = {(layer, head) for layer in range(2) for head in range(4)}
    current = 1.0
    for layer, head in reversed(sorted(kept)):
        candidate = evaluate_circuit(tiny_gpt2, tiny_task, sorted(kept - {(layer, head)}))[0].faithfulness
        assert float(pruned.effects[layer, head]) == pytest.approx(current - candidate, abs=1e-4)
        if abs(current - candidate) < PRUNING_THRESHOLD:
            kept.discard((layer, head))
            current = candidate
    assert 0 < len(kept) < 8
    assert set(pruned.circuit.heads) == kept
    assert pruned.circuit.faithfulness == pytest.approx(current, abs=1e-4)
    assert {tuple(h) for h in torch.nonzero(pruned.effects.abs() >= PRUNING_THRESHOLD).tolist()} == kept


def test_pruning_threshold_zero_keeps_every_head_and_a_huge_one_none(tiny_gpt2, tiny_task):
    assert prune_heads(tiny_gpt2, tiny_task, 0.0).circuit.n_heads == 8
    nothing = prune_heads(tiny_gpt2, tiny_task, 1e9).circuit
    assert nothing.n_heads == 0 and nothing.faithfulness == pytest.approx(0.0, abs=1e-6)
    for bad in (-0.1, float("nan")):
        with pytest.raises(HeadSetError, match="threshold"):
            prune_heads(tiny_gpt2, tiny_task, bad)


def test_pruning_keeps_the_toy_ioi_circuit_and_the_heads_patching_misses(one_thread):
    """On toy-4l, ACDC over heads keeps every known ioi head and more, and the result is faithful.

    It runs on the prompts the ground truth was computed on: on a 60-pair sample (seed 1) one
    known head's effect, tested against the circuit left at its turn, fell below τ."""
    from saekit import load_model
    from saekit.tasks import make_task
    from saekit.tasks.ground_truth import ground_truth_heads
    from saekit.zoo.ground_truth import GROUND_TRUTH_PAIRS, GROUND_TRUTH_SEED

    model = load_model("toy-4l")
    task = make_task("ioi", model, n_pairs=GROUND_TRUTH_PAIRS, seed=GROUND_TRUTH_SEED)
    pruned = prune_heads(model, task, threshold=0.02)
    truth = ground_truth_heads("toy-4l", "ioi")
    assert truth < set(pruned.circuit.heads)
    assert pruned.circuit.faithfulness > 0.8


def test_faithfulness_curves_end_at_the_ends(tiny_gpt2, tiny_task):
    scores = torch.tensor([[0.1, 5.0, 0.2, 0.3], [4.0, 0.0, 0.5, 0.6]])
    curves = faithfulness_curves(tiny_gpt2, tiny_task, scores, n_random=2, batch_size=32)
    assert curves.n_kept == list(range(9)) and curves.score_order[:2] == [(0, 1), (1, 0)]
    for curve in [curves.score_metric, *curves.random_metric]:
        assert curve[0] == pytest.approx(curves.ablated_all, abs=1e-4)
        assert curve[-1] == pytest.approx(curves.full, abs=1e-4)
    top_two, _ = evaluate_circuit(tiny_gpt2, tiny_task, [(0, 1), (1, 0)])
    assert curves.score_metric[2] == pytest.approx(top_two.metric, abs=1e-4)
    assert curves.random_metric[0] != curves.random_metric[1]
    assert curves.normalised([curves.full])[0] == pytest.approx(1.0)
    few = faithfulness_curves(tiny_gpt2, tiny_task, scores, n_random=1, ks=[2, 0])
    assert few.n_kept == [0, 2] and few.score_metric[1] == pytest.approx(top_two.metric, abs=1e-4)
    json.loads(json.dumps(curves.to_dict()))


def test_evaluation_rejects_bad_heads_and_scores(tiny_gpt2, tiny_task):
    with pytest.raises(HeadSetError, match="empty"):
        evaluate_circuit(tiny_gpt2, tiny_task, [])
    with pytest.raises(HeadSetError, match="outside a model"):
        evaluate_circuit(tiny_gpt2, tiny_task, ["2.0"])
    with pytest.raises(HeadSetError, match=r"\[2, 4\]"):
        circuit_table(tiny_gpt2, tiny_task, torch.zeros(8), top_k=2)
    with pytest.raises(HeadSetError, match="No head is selected"):
        circuit_table(tiny_gpt2, tiny_task, torch.zeros(2, 4), threshold=1.0)
    with pytest.raises(TaskError, match="no reference set"):
        evaluate_circuit(tiny_gpt2, tiny_task, ["0.0"], "resample", reference=tiny_task)


def test_plot_faithfulness_curves_draws_the_data():
    import matplotlib

    matplotlib.use("Agg")
    from saekit.ablation import FaithfulnessCurves
    from saekit.viz import plot_faithfulness_curves

    curves = FaithfulnessCurves(
        metric_name="logit_diff", ablation="mean", full=3.0, ablated_all=-1.0, n_kept=[0, 1, 2],
        score_order=[(0, 0), (0, 1)], score_metric=[-1.0, 2.0, 3.0], random_seeds=[0, 1],
        random_metric=[[-1.0, 0.0, 3.0], [-1.0, 1.0, 3.0]],
    )
    ax = plot_faithfulness_curves(curves)
    score_line, random_line = ax.get_lines()[:2]
    assert list(score_line.get_ydata()) == pytest.approx([0.0, 0.75, 1.0])
    assert list(random_line.get_ydata()) == pytest.approx([0.0, 0.375, 1.0])
    raw = plot_faithfulness_curves(curves, normalised=False)
    assert list(raw.get_lines()[0].get_ydata()) == [-1.0, 2.0, 3.0]
    assert raw.get_ylabel() == "logit_diff"


def test_validate_command_prints_one_table(tiny_gpt2, tiny_gpt2_dir, capsys, monkeypatch, one_thread):
    import saekit.models
    from saekit.cli import main

    monkeypatch.setattr(saekit.models, "load_model", lambda name, device: tiny_gpt2)  # loaded once

    code = main(["validate", "--model", str(tiny_gpt2_dir), "--task", "ioi", "--n-pairs", "6",
                 "--top-k", "3", "--n-random", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ground_truth_circuit"] is None  # a local folder has no known circuit
    assert report["found_circuit"]["n_heads"] == 3 and len(report["found_circuit"]["heads"]) == 3
    assert report["random_circuit"]["n_heads"] == 3
    found = report["found_circuit"]
    spread = report["full"] - report["ablated_all"]
    assert found["faithfulness"] == pytest.approx((found["metric"] - report["ablated_all"]) / spread)
    assert {"metric_name", "full", "ablated_all"} <= set(report)
    assert main(["validate", "--model", str(tiny_gpt2_dir), "--task", "ioi", "--n-pairs", "6",
                 "--json"]) == 2  # no ground truth and no --top-k: a saekit error, not a traceback


def test_compare_command_reports_every_method(tiny_gpt2, tiny_gpt2_dir, capsys, monkeypatch, one_thread):
    import saekit.models
    import saekit.tasks.ground_truth as ground_truth
    from saekit.cli import main

    monkeypatch.setattr(saekit.models, "load_model", lambda name, device: tiny_gpt2)  # loaded once
    monkeypatch.setattr(ground_truth, "ground_truth_heads", lambda model, task: frozenset({(1, 0), (0, 2)}))
    assert main(["compare", "--model", str(tiny_gpt2_dir), "--task", "ioi", "--n-pairs", "6", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for method in ("sae", "activation_patching", "attribution_patching", "hisp", "acdc"):
        assert 0.0 <= report[method]["auc"] <= 1.0 and report[method]["seconds"] > 0


def test_toy_model_circuit_from_patching_beats_random_heads(one_thread):
    """On the shipped toy-4l, keeping the heads patching ranks highest recovers much of IOI."""
    from saekit import load_model
    from saekit.tasks import make_task
    from saekit.tasks.ground_truth import ground_truth_heads

    model = load_model("toy-4l")
    task = make_task("ioi", model, n_pairs=40, seed=1)
    effects = head_patching_effects(model, task)
    truth = ground_truth_heads("toy-4l", "ioi")
    table = circuit_table(model, task, effects.abs(), ground_truth=truth, n_random=5)
    assert table.full > table.ablated_all
    assert table.found_circuit.faithfulness > table.random_circuit.faithfulness_mean + 0.3
    assert table.ground_truth_circuit.faithfulness > table.random_circuit.faithfulness_mean + 0.3


def test_circuit_table_rows_are_their_own_circuits(tiny_gpt2, tiny_task):
    """The ground-truth row and each random row hold evaluate_circuit of that very circuit."""
    scores = torch.arange(8.0).view(2, 4)
    truth = ["0.0", "0.1", "1.0"]
    table = circuit_table(tiny_gpt2, tiny_task, scores, ground_truth=truth, top_k=2, n_random=3, seed=5)
    gt, _ = evaluate_circuit(tiny_gpt2, tiny_task, truth)
    assert table.ground_truth_circuit.metric == pytest.approx(gt.metric, abs=1e-5)
    assert table.ground_truth_circuit.kl == pytest.approx(gt.kl, abs=1e-6)
    assert table.ground_truth_circuit.metric != pytest.approx(table.found_circuit.metric, abs=1e-3)
    draws = random_head_masks(2, 4, 2, [5, 6, 7])
    expected = [evaluate_circuit(tiny_gpt2, tiny_task, draw)[0] for draw in draws]
    assert table.random_circuit.metrics == pytest.approx([r.metric for r in expected], abs=1e-5)
    assert table.random_circuit.faithfulnesses == pytest.approx([r.faithfulness for r in expected], abs=1e-4)
    assert len({round(r.metric, 4) for r in expected}) == 3  # an off-by-one row would show


def test_random_head_masks_differ_between_seeds():
    draws = random_head_masks(4, 4, 3, range(6))
    assert len({tuple(draw.flatten().tolist()) for draw in draws}) > 1
    assert not torch.equal(random_head_masks(4, 4, 3, [0])[0], random_head_masks(4, 4, 3, [1])[0])


def test_kl_is_full_model_against_circuit_over_the_vocabulary(tiny_gpt2, tiny_task):
    """runs.kl = Σ_v p_full(v) (log p_full(v) − log p_circuit(v)) at each answer position."""
    keep = torch.zeros(1, 2, 4, dtype=torch.bool)
    keep[0, 1, 0] = True  # one head kept, the other seven zeroed
    runs = ablation_runs(tiny_gpt2, tiny_task, keep, AblationKind.ZERO)

    def zero_heads(z, hook):
        kept = keep[0, int(hook.name.split(".")[1])]
        return torch.where(kept[None, None, :, None], z, 0.0)

    with torch.no_grad():
        full = tiny_task.answer_logits(tiny_gpt2(tiny_task.positive_tokens)).log_softmax(-1)
        with tiny_gpt2.hooks(fwd_hooks=[(hook_z_name(layer), zero_heads) for layer in range(2)]):
            ablated = tiny_task.answer_logits(tiny_gpt2(tiny_task.positive_tokens)).log_softmax(-1)
    expected = (full.exp() * (full - ablated)).sum(-1)
    assert expected.min() > 1e-4
    torch.testing.assert_close(runs.kl[0], expected, atol=1e-7, rtol=1e-3)


# --------------------------------------------------------------------------------------------
# Passes that compute only what the metric reads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_fixture", ["tiny_gpt2", "toy_4l"])
def test_final_residual_unembedded_is_the_models_logits(model_fixture, request):
    model = request.getfixturevalue(model_fixture)
    tokens = torch.tensor([[1, 15, 7, 30, 2], [3, 8, 21, 4, 9]])
    positions = torch.tensor([4, 2])
    with torch.no_grad():
        expected = model(tokens)[torch.arange(2), positions]
        resid = final_residual(model, tokens, positions)
    torch.testing.assert_close(unembed(model, resid), expected, atol=1e-5, rtol=1e-5)
    columns = torch.tensor([3, 7, 11])
    torch.testing.assert_close(unembed(model, resid, columns), expected[:, columns], atol=1e-5, rtol=1e-5)
    assert not model.unembed._forward_pre_hooks, "the stop before the unembedding must be removed"
    with torch.no_grad():
        torch.testing.assert_close(model(tokens)[torch.arange(2), positions], expected)


@pytest.mark.parametrize("metric", ["logit_diff", "logit_diff_max", "prob_diff"])
def test_scored_tokens_give_the_metric_of_the_full_logits(gpt2_tokenizer, metric):
    task = task_from_strings(
        gpt2_tokenizer, "mixed", ["When Mary and John", "Then Tom and Anna"], ["When Mary and Paul", "Then Tom and Kate"],
        [[" Mary", " Tom"], " Anna"], [" John", [" Paul", " Kate"]], metric=metric,
    )
    logits = torch.randn(2, len(gpt2_tokenizer), generator=torch.Generator().manual_seed(0))
    columns, answers, wrongs = scored_tokens(task)
    if metric == "prob_diff":  # a softmax reads every logit
        assert columns is None
        return
    assert len(columns) == 6 and (answers[0] >= 0).all() and (wrongs[0, 1:] == -1).all()
    torch.testing.assert_close(
        compute_metric(logits[:, columns], answers, wrongs, task.metric),
        compute_metric(logits, task.answer_tokens, task.wrong_tokens, task.metric),
    )


def test_ablation_passes_never_unembed_every_position(tiny_gpt2, tiny_task):
    """No full-logit forward pass anywhere in ablation, patching, ACDC or the gradient baselines."""
    from saekit.baselines import BASELINES

    calls = []
    handle = tiny_gpt2.unembed.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    try:
        ablation_runs(tiny_gpt2, tiny_task, torch.ones(2, 2, 4, dtype=torch.bool), batch_size=4)
        for method in BASELINES.values():
            method(tiny_gpt2, tiny_task, batch_size=4)
        faithfulness_curves(tiny_gpt2, tiny_task, torch.rand(2, 4), ks=[0, 4, 8])
    finally:
        handle.remove()
    assert calls == []


def test_metric_only_runs_match_the_runs_with_kl(tiny_gpt2, tiny_task):
    keep = random_head_masks(2, 4, 3, seeds=range(3))
    with_kl = ablation_runs(tiny_gpt2, tiny_task, keep, batch_size=5)
    metric_only = ablation_runs(tiny_gpt2, tiny_task, keep, batch_size=5, kl=False)
    assert metric_only.kl is None and with_kl.kl.shape == (3, 6)
    torch.testing.assert_close(metric_only.metric, with_kl.metric, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(metric_only.clean_metric, with_kl.clean_metric, atol=1e-5, rtol=1e-5)


def test_acdc_baseline_carries_the_circuit_prune_heads_finds(tiny_gpt2, tiny_task):
    from saekit.baselines import acdc_scores

    result = acdc_scores(tiny_gpt2, tiny_task, batch_size=4, threshold=0.05)
    pruned = prune_heads(tiny_gpt2, tiny_task, 0.05, batch_size=4)
    assert result.pruned.circuit == pruned.circuit
    torch.testing.assert_close(result.pruned.effects, pruned.effects)
    torch.testing.assert_close(result.signed, pruned.effects)


def test_a_circuit_given_twice_runs_once(tiny_gpt2, tiny_task):
    circuit = random_head_masks(2, 4, 3, seeds=[0])
    other = random_head_masks(2, 4, 3, seeds=[1])
    keep = torch.cat([circuit, other, circuit, circuit])
    passes = []
    handle = tiny_gpt2.blocks[0].register_forward_hook(lambda module, args, output: passes.append(1))
    try:
        runs = ablation_runs(tiny_gpt2, tiny_task, keep, AblationKind.ZERO, batch_size=tiny_task.n_pairs)
    finally:
        handle.remove()
    assert len(passes) == 1 + 2  # the clean run and the two distinct circuits
    torch.testing.assert_close(runs.metric[2], runs.metric[0])
    torch.testing.assert_close(runs.kl[3], runs.kl[0])
    assert (runs.metric[1] - runs.metric[0]).abs().max() > 1e-4


def test_patched_passes_start_at_the_first_ablated_layer_and_fall_back_where_blocks_cannot_run_alone(
    tiny_gpt2, tiny_task, monkeypatch
):
    from saekit import ablation

    started = []
    run_from = ablation._final_residual_from
    monkeypatch.setattr(ablation, "_final_residual_from", lambda model, resid, first, *rest: started.append(first) or run_from(model, resid, first, *rest))
    effects = head_patching_effects(tiny_gpt2, tiny_task, batch_size=len(tiny_task.positive_tokens))  # one head a pass
    assert started.count(1) == 1 + 4, "the check, then the 4 passes that patch a layer-1 head skip block 0"
    # the numbers are those of full passes (test_patching_matches_one_head_at_a_time), and without the late start too
    monkeypatch.setattr(ablation, "_can_start_late", lambda *args: False)
    started.clear()
    torch.testing.assert_close(head_patching_effects(tiny_gpt2, tiny_task, batch_size=6), effects, atol=1e-5, rtol=1e-5)
    assert started == []


def test_the_late_start_check_fails_when_the_blocks_alone_do_not_reproduce_the_clean_pass(tiny_gpt2, tiny_task):
    from saekit import ablation

    positions = tiny_task.lengths - 1
    final, resid_pre = ablation._clean_pass(tiny_gpt2, tiny_task.positive_tokens, positions)
    assert resid_pre is not None and ablation._can_start_late(tiny_gpt2, resid_pre, final, positions)
    assert not ablation._can_start_late(tiny_gpt2, [2 * resid for resid in resid_pre], final, positions)
