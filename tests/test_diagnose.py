"""The premise diagnostic: its measures by hand, its counterfactual edits, its verdicts, CLI and figure."""

from __future__ import annotations

import json
import math

import pytest
import torch

from saekit.activations import HeadActivations, head_activations
from saekit.cli import main
from saekit.diagnose import (
    VERDICTS,
    d_prime,
    diagnose,
    direction_and_size,
    keep_only_size_change,
    probe_accuracy,
    remove_class_information,
)
from saekit.discovery import discover, paper_config
from saekit.errors import ActivationError, HeadSetError
from saekit.tasks import make_task
from saekit.tasks.ground_truth import ground_truth_heads


def one_head(positive, negative) -> HeadActivations:
    """Activations of a 1 x 1 model from per-example vectors."""
    return HeadActivations(torch.tensor(positive, dtype=torch.float)[:, None],
                           torch.tensor(negative, dtype=torch.float)[:, None], "result", "mean", 1, 1)


def test_d_prime_by_hand_and_scale_free():
    # μ₊ = (2, 0), μ₋ = (-2, 0); each class has total variance 1, so s = 1 and d′ = 4
    activations = one_head([[1.0, 0.0], [3.0, 0.0]], [[-1.0, 0.0], [-3.0, 0.0]])
    assert d_prime(activations).tolist() == [4.0]
    scaled = HeadActivations(10 * activations.positive, 10 * activations.negative, "result", "mean", 1, 1)
    assert d_prime(scaled).tolist() == [4.0]
    # one class spread (variance 4), the other not: s = sqrt(2)
    assert d_prime(one_head([[0.0], [4.0]], [[-2.0], [-2.0]])).item() == pytest.approx(4 / math.sqrt(2))
    assert d_prime(one_head([[1.0], [1.0]], [[1.0], [1.0]])).tolist() == [0.0]  # constant head
    assert d_prime(one_head([[1.0], [1.0]], [[2.0], [2.0]])).tolist() == [math.inf]  # separable, no spread


def test_direction_and_size_by_hand():
    cosine, ratio = direction_and_size(one_head([[3.0, 0.0], [3.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]))
    assert cosine.item() == pytest.approx(1.0) and ratio.item() == pytest.approx(3.0)
    cosine, ratio = direction_and_size(one_head([[1.0, 0.0]], [[0.0, 2.0]]))
    assert cosine.item() == pytest.approx(0.0) and ratio.item() == pytest.approx(0.5)


def test_probe_accuracy_is_perfect_on_separable_heads_and_chance_on_identical_ones():
    generator = torch.Generator().manual_seed(0)
    positive = torch.randn(40, 2, 3, generator=generator)
    negative = positive[torch.randperm(40, generator=generator)].clone()
    negative[:, 0] += 5.0  # head 0 separable, head 1 the same distribution on both sides
    accuracy = probe_accuracy(HeadActivations(positive, negative, "result", "mean", 1, 2), n_folds=4)
    assert accuracy[0] == 1.0
    assert accuracy[1] < 0.7
    assert torch.equal(accuracy, probe_accuracy(HeadActivations(positive, negative, "result", "mean", 1, 2), n_folds=4))
    with pytest.raises(ActivationError, match="n_folds"):
        probe_accuracy(HeadActivations(positive, negative, "result", "mean", 1, 2), n_folds=1)


def planted(n_pairs=60, n_layers=2, n_heads=4, width=8):
    """Every head separates the classes by a change of direction (class information everywhere)."""
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(n_layers * n_heads, width, generator=generator)
    shift = torch.randn(n_layers * n_heads, width, generator=generator)
    noise = 0.3 * torch.randn(2, n_pairs, n_layers * n_heads, width, generator=generator)
    return HeadActivations(base + shift + noise[0], base - shift + noise[1], "result", "mean", n_layers, n_heads)


def test_edits_remove_class_information_only_where_asked():
    activations = planted()
    edited = remove_class_information(activations, [(0, 1), (1, 3)], seed=3)
    flat = [1, 7]
    untouched = [head for head in range(8) if head not in flat]
    assert torch.equal(edited.positive, activations.positive)
    assert torch.equal(edited.negative[:, untouched], activations.negative[:, untouched])
    for head in flat:  # every negative is another pair's positive
        matches = (edited.negative[:, None, head] == activations.positive[None, :, head]).all(-1)
        source = matches.float().argmax(1)
        assert matches.any(1).all() and sorted(source.tolist()) == list(range(60))
        assert (source != torch.arange(60)).all()
    separation = d_prime(edited)
    assert (separation[flat] < 0.5).all() and (separation[untouched] > 2).all()


def test_size_only_edit_keeps_direction_and_changes_size():
    activations = planted()
    edited = keep_only_size_change(activations, [(1, 0)], scale=0.5)
    cosine, ratio = direction_and_size(edited)
    assert cosine[4].item() == pytest.approx(1.0, abs=0.02) and ratio[4].item() == pytest.approx(2.0, rel=0.05)
    own = keep_only_size_change(activations, [(1, 0)])  # each head's own ratio of mean norms
    expected = activations.negative[:, 4].norm(dim=-1).mean() / activations.positive[:, 4].norm(dim=-1).mean()
    assert own.negative[:, 4].norm(dim=-1).mean() / activations.positive[:, 4].norm(dim=-1).mean() == pytest.approx(
        float(expected), rel=0.05)
    with pytest.raises(ActivationError, match="scale must be a positive number"):
        keep_only_size_change(activations, [(1, 0)], scale=0.0)


class _TaskStub:
    def __init__(self, n_pairs):
        self.n_pairs = n_pairs


def test_verdicts_follow_the_edits_and_size_only_heads_are_named():
    activations = planted()
    circuit = {(0, 1), (1, 3)}
    others = [(layer, head) for layer in range(2) for head in range(4) if (layer, head) not in circuit]
    everywhere = diagnose(None, _TaskStub(60), circuit, activations=activations)
    assert everywhere.verdict_key == "cannot_separate" and everywhere.verdict == VERDICTS["cannot_separate"]
    assert everywhere.n_informative == 8
    only_circuit = diagnose(None, _TaskStub(60), circuit, activations=remove_class_information(activations, others))
    assert only_circuit.verdict_key == "holds" and only_circuit.auc_d_prime == 1.0 and only_circuit.auc_probe == 1.0
    assert only_circuit.n_informative == 2 and only_circuit.top_share > 0.9
    assert only_circuit.blind_heads == []
    sized = keep_only_size_change(remove_class_information(activations, others), [(1, 3)], scale=0.4)
    blind = diagnose(None, _TaskStub(60), circuit, activations=sized)
    assert blind.size_only.nonzero().tolist() == [[1, 3]] and blind.blind_heads == [(1, 3)]
    assert blind.verdict.endswith("argmax codes cannot see heads 1.3 (their change is only of size)")
    # without a ground truth the verdict counts heads
    assert diagnose(None, _TaskStub(60), activations=activations).verdict_key == "spread"
    unknown = diagnose(None, _TaskStub(60), activations=remove_class_information(activations, others))
    assert unknown.verdict_key == "concentrated" and unknown.auc_d_prime is None
    assert sorted(unknown.blind_heads) == []
    saved = json.loads(json.dumps(blind.to_dict()))
    assert saved["blind_heads"] == [[1, 3]] and saved["verdict_key"] == "holds"
    with pytest.raises(HeadSetError, match="every head"):
        diagnose(None, _TaskStub(60), [(l, h) for l in range(2) for h in range(4)], activations=activations)
    with pytest.raises(ActivationError, match="cover 60 pairs but the task has 10"):
        diagnose(None, _TaskStub(10), circuit, activations=activations)


def test_verdict_agrees_with_the_method_on_edited_live_activations(toy_4l):
    """Acceptance (issue 17): on toy-4l's ioi, edited so the answer is known, the diagnostic's
    verdict and the unchanged SAE method agree."""
    task = make_task("ioi", toy_4l, n_pairs=100)
    circuit = ground_truth_heads("toy-4l", "ioi")
    others = [(layer, head) for layer in range(4) for head in range(8) if (layer, head) not in circuit]
    live = head_activations(toy_4l, task, progress=False)
    config = paper_config("ioi")
    cases = {
        "holds": remove_class_information(live, others),
        "cannot_separate": remove_class_information(live, circuit),
    }
    for expected, edited in cases.items():
        verdict = diagnose(toy_4l, task, circuit, activations=edited)
        method = discover(toy_4l, task, config, seeds=[0], ground_truth=circuit, activations=edited, progress=False)
        assert verdict.verdict_key == expected
        assert method.auc_mean >= 0.9 if expected == "holds" else method.auc_mean <= 0.2


def test_cli_prints_the_table_and_json(toy_4l, capsys, tmp_path):
    assert main(["diagnose", "--model", "toy-4l", "--task", "induction", "--n-pairs", "60",
                 "--figure", str(tmp_path / "premise.png")]) == 0
    text = capsys.readouterr().out
    assert text.count("\n") > 32 and "verdict: " in text and "ROC AUC vs ground truth: d′" in text
    assert (tmp_path / "premise.png").stat().st_size > 0
    assert main(["diagnose", "--model", "toy-4l", "--task", "induction", "--n-pairs", "60", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_heads"] == 32 and len(report["d_prime"]) == 4 and report["verdict_key"] in VERDICTS
    assert report["verdict"].startswith(VERDICTS[report["verdict_key"]])


def test_figure_colours_circuit_heads_and_rings_size_only_ones():
    import matplotlib

    matplotlib.use("Agg")
    from saekit.viz import plot_premise

    activations = planted()
    circuit = {(0, 1), (1, 3)}
    others = [(layer, head) for layer in range(2) for head in range(4) if (layer, head) not in circuit]
    sized = keep_only_size_change(remove_class_information(activations, others), [(1, 3)], scale=0.4)
    ax = plot_premise(diagnose(None, _TaskStub(60), circuit, activations=sized))
    others_points, circuit_points, rings = (c.get_offsets() for c in ax.collections)
    assert len(others_points) == 6 and len(circuit_points) == 2 and len(rings) == 1
    assert [t.get_text() for t in ax.texts] == ["1.3"]


def test_heads_separable_without_spread_count_as_twice_the_largest_finite_d_prime():
    positive = torch.randn(20, 3, 4, generator=torch.Generator().manual_seed(0))
    negative = positive.clone()
    negative[:, 0] += 3.0
    positive[:, 1:], negative[:, 1] = 1.0, 2.0
    negative[:, 2] = 3.0
    result = diagnose(None, _TaskStub(20), activations=HeadActivations(positive, negative, "result", "mean", 1, 3))
    assert result.d_prime[0, 1:].isinf().all() and result.d_prime[0, 0].isfinite()
    assert result.top_share == pytest.approx(2 / 5)  # top head: 2 d′₀ of d′₀ + 2 d′₀ + 2 d′₀
