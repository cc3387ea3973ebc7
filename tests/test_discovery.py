"""discover() end to end: a planted circuit it must find, seeding, reuse, scale, errors and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import saekit.discovery as discovery
from saekit.activations import HeadActivations
from saekit.codes import CODE_KINDS
from saekit.cli import main
from saekit.discovery import DiscoveryConfig, discover, paper_config
from saekit.errors import ActivationError, HeadSetError, SAEError, SaekitError, TaskError
from saekit.sae import SAEConfig
from saekit.scoring import roc_auc
from saekit.tasks import make_task

FAST_SAE = SAEConfig(d_sae=32, l1_coefficient=1e-4, steps=60)


def test_config_round_trips_through_json():
    config = DiscoveryConfig(
        sae=SAEConfig(architecture="relu", d_sae=64, l1_coefficient=0.05), activation="z",
        reduction="last", sae_examples=5, count_examples=20, score="edge", batch_size=8,
    )
    assert DiscoveryConfig.from_json(config.to_json()) == config
    assert DiscoveryConfig.from_json(DiscoveryConfig().to_json()) == DiscoveryConfig()
    levelled = DiscoveryConfig(code_kind="argmax_level", code_levels=3)
    assert DiscoveryConfig.from_json(levelled.to_json()) == levelled
    assert json.loads(levelled.to_json())["code_kind"] == "argmax_level"
    assert DiscoveryConfig().code_kind == "argmax"  # the paper's codes stay the default


def test_paper_config_uses_the_papers_l1_per_task():
    assert paper_config("docstring").sae.l1_coefficient == 0.05
    assert paper_config("ioi").sae.l1_coefficient == 0.02
    assert paper_config("ioi", l1_coefficient=0.1, score="edge").sae.l1_coefficient == 0.1


def test_bad_configs_are_refused():
    with pytest.raises(SaekitError, match="Unknown score"):
        DiscoveryConfig(score="nodes")
    with pytest.raises(ActivationError, match="Unknown reduction"):
        DiscoveryConfig(reduction="max")
    with pytest.raises(SaekitError, match="sae_examples must be a positive integer"):
        DiscoveryConfig(sae_examples=0)
    with pytest.raises(SAEError, match="Unknown SAE architecture"):
        paper_config("ioi", architecture="nope")
    with pytest.raises(SaekitError, match="Unknown code_kind 'level'"):
        DiscoveryConfig(code_kind="level")
    for levels in (1, True, 2.5):
        with pytest.raises(SaekitError, match="code_levels must be an integer of at least 2"):
            DiscoveryConfig(code_levels=levels)
    with pytest.raises(SaekitError, match="Unknown DiscoveryConfig field"):
        DiscoveryConfig.from_dict({"sae_example": 3})
    with pytest.raises(SaekitError, match="build DiscoveryConfig.sae=...."):
        paper_config("ioi", sae=SAEConfig(d_sae=10))


def planted_circuit(n_pairs=60, n_layers=2, n_heads=4, width=16, circuit=((0, 1), (1, 3))):
    """Head vectors where only the circuit heads point elsewhere on negatives than on positives."""
    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(2 * n_layers * n_heads, width, generator=generator), dim=-1)
    n_total = n_layers * n_heads
    positive = directions[:n_total].expand(n_pairs, -1, -1).clone()
    negative = positive.clone()
    for layer, head in circuit:
        flat = layer * n_heads + head
        negative[:, flat] = directions[n_total + flat]
    positive = positive * (1 + 0.05 * torch.rand(n_pairs, n_total, 1, generator=generator))
    negative = negative * (1 + 0.05 * torch.rand(n_pairs, n_total, 1, generator=generator))
    return HeadActivations(positive, negative, "result", "mean", n_layers, n_heads), set(circuit)


class _TaskStub:
    """What discover reads of a task when the activations are given."""

    name = "planted"

    def __init__(self, n_pairs):
        self.n_pairs = n_pairs


@pytest.mark.parametrize("score", ["node", "node_normalised", "edge"])
def test_finds_a_planted_circuit(score):
    activations, circuit = planted_circuit()
    config = DiscoveryConfig(sae=SAEConfig(l1_coefficient=1e-3, steps=100), score=score)
    result = discover(None, _TaskStub(60), config, seeds=range(3), ground_truth=circuit, activations=activations)
    assert result.scores.shape == (3, 2, 4)
    assert result.auc_per_seed == (1.0, 1.0, 1.0)
    assert result.auc_mean == 1.0 and result.auc_std == 0.0
    assert set(result.ranked_heads[:2]) == circuit
    saved = json.loads(json.dumps(result.to_dict()))
    assert DiscoveryConfig.from_dict(saved["config"]) == config
    assert saved["auc"]["per_seed"] == [1.0, 1.0, 1.0] and len(saved["scores"]) == 3


def test_activations_are_taken_once_and_seeds_differ_but_repeat(tiny_gpt2, monkeypatch):
    task = make_task("ioi", tiny_gpt2, n_pairs=12, seed=0)
    calls = []
    original = discovery.head_activations
    monkeypatch.setattr(discovery, "head_activations", lambda *a, **k: calls.append(1) or original(*a, **k))
    config = DiscoveryConfig(sae=FAST_SAE, count_examples=8)
    truth = {(0, 0), (1, 2)}
    result = discover(tiny_gpt2, task, config, seeds=[0, 1, 2], ground_truth=truth, progress=False)
    again = discover(tiny_gpt2, task, config, seeds=[1], ground_truth=truth, progress=False)
    assert len(calls) == 2  # once per discover call, not once per seed
    assert result.scores.shape == (3, tiny_gpt2.cfg.n_layers, tiny_gpt2.cfg.n_heads)
    assert torch.equal(again.scores[0], result.scores[1])  # a seed is reproducible
    assert not torch.equal(result.scores[0], result.scores[2])  # and seeds differ
    assert result.auc_per_seed == tuple(roc_auc(s, truth) for s in result.scores)
    assert set(result.seconds) == {"activations", "sae", "scoring", "total"}
    assert result.scores.max() > 0  # the SAE found codes that differ between sides
    assert len(result.sae_metrics) == 3 and "explained_variance" in result.sae_metrics[0]


def test_out_of_range_example_counts_and_mismatched_activations_are_refused(tiny_gpt2):
    task = make_task("induction", tiny_gpt2, n_pairs=4)
    with pytest.raises(TaskError, match="sae_examples=10.*only 8 examples"):
        discover(tiny_gpt2, task, DiscoveryConfig(sae=FAST_SAE))
    with pytest.raises(TaskError, match="count_examples=5"):
        discover(tiny_gpt2, task, DiscoveryConfig(sae=FAST_SAE, sae_examples=2, count_examples=5))
    activations, _ = planted_circuit(n_pairs=4)
    with pytest.raises(ActivationError, match="result/mean but the config asks for z/mean"):
        discover(tiny_gpt2, task, DiscoveryConfig(sae=FAST_SAE, activation="z", sae_examples=2), activations=activations)
    with pytest.raises(HeadSetError, match="outside a model of 2 layers x 4 heads"):
        discover(tiny_gpt2, task, DiscoveryConfig(sae=FAST_SAE, sae_examples=2), ground_truth={(9, 9)})
    with pytest.raises(SaekitError, match="at least one seed"):
        discover(tiny_gpt2, task, DiscoveryConfig(sae=FAST_SAE, sae_examples=2), seeds=[])
    with pytest.raises(SaekitError, match=r"config.sae.seed=7 would be ignored; pass seeds=\[7\]"):
        discover(tiny_gpt2, task, paper_config("induction", seed=7, sae_examples=2))


def gpt2_small_shaped(tmp_path_factory, gpt2_tokenizer_dir, n_embd):
    from conftest import save_random_gpt2

    from saekit import load_model

    folder = tmp_path_factory.mktemp(f"gpt2-12x12x{n_embd}")
    save_random_gpt2(folder, gpt2_tokenizer_dir, n_layer=12, n_head=12, n_embd=n_embd, n_positions=64)
    return load_model(folder)


def run_at_gpt2_scale(model):
    from saekit.tasks.ground_truth import ground_truth_heads

    task = make_task("ioi", model, n_pairs=6)
    truth = ground_truth_heads("gpt2-small", "ioi")
    for score in ("node", "edge"):
        config = paper_config("ioi", score=score, steps=20, l1_coefficient=1e-4)
        result = discover(model, task, config, seeds=range(2), ground_truth=truth, progress=False)
        assert result.scores.shape == (2, 12, 12)
        assert len(result.auc_per_seed) == 2 and all(0 <= auc <= 1 for auc in result.auc_per_seed)
        if score == "edge":  # every one of the top 144²/4 ordered pairs names two heads
            assert result.scores.sum(dim=(1, 2)).tolist() == [2 * (144 * 144 // 4)] * 2


def test_gpt2_small_layout_with_narrow_width(tmp_path_factory, gpt2_tokenizer_dir):
    """144 heads (12 x 12) at d_model 96: the shapes and the edge variant at GPT-2's head count."""
    run_at_gpt2_scale(gpt2_small_shaped(tmp_path_factory, gpt2_tokenizer_dir, 96))


@pytest.mark.slow
def test_gpt2_small_shaped_model(tmp_path_factory, gpt2_tokenizer_dir):
    """The full GPT-2-small shape (d_model 768), random weights."""
    run_at_gpt2_scale(gpt2_small_shaped(tmp_path_factory, gpt2_tokenizer_dir, 768))


def test_cli_json_output(tiny_gpt2_dir, capsys):
    argv = ["discover", "--model", str(tiny_gpt2_dir), "--task", "ioi", "--n-pairs", "8",
            "--seeds", "2", "--sae-examples", "4", "--l1", "0.0001", "--sae-steps", "20", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert set(out) == {"model", "task", "n_heads", "seeds", "auc", "scores", "ground_truth", "seconds"}
    assert out["n_heads"] == 8 and out["seeds"] == [0, 1] and len(out["scores"]) == 2
    assert out["auc"] == {"mean": None, "std": None, "per_seed": []}  # no ground truth for this model
    assert "no ground truth" in captured.err
    assert set(out["seconds"]) == {"activations", "sae", "scoring", "total"}


def test_cli_reports_bad_input_without_a_traceback(tiny_gpt2_dir, capsys):
    assert main(["discover", "--model", "no-such-model", "--task", "ioi"]) == 2
    assert "Unknown model 'no-such-model'" in capsys.readouterr().err
    assert main(["discover", "--model", str(tiny_gpt2_dir), "--task", "iol"]) == 2
    assert "Unknown task 'iol'" in capsys.readouterr().err
    assert main(["discover", "--model", str(tiny_gpt2_dir), "--task", "ioi", "--sae", "nope"]) == 2
    assert "Unknown SAE architecture" in capsys.readouterr().err
    for command in (["discover", "--model", str(tiny_gpt2_dir), "--task", "ioi"], ["zoo", "train"]):
        assert main([*command, "--threads", "0"]) == 2
        assert "--threads: must be at least 1, not 0" in capsys.readouterr().err


def _cli_choices(command: str, option: str) -> tuple:
    import argparse

    from saekit.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return tuple(next(a for a in commands.choices[command]._actions if option in a.option_strings).choices)


def test_cli_choices_are_the_librarys_names():
    """The CLI spells its choices out so that parsing imports no torch; they must not drift."""
    from saekit.ablation import AblationKind
    from saekit.activations import ACTIVATIONS, REDUCTIONS

    assert _cli_choices("discover", "--score") == discovery.SCORES
    assert _cli_choices("discover", "--activation") == ACTIVATIONS
    assert _cli_choices("discover", "--reduction") == REDUCTIONS
    assert _cli_choices("discover", "--code-kind") == CODE_KINDS
    assert _cli_choices("validate", "--ablation") == tuple(kind.value for kind in AblationKind)


def asymmetric_circuit(n_pairs=30, n_layers=2, n_heads=4, width=16, circuit=((0, 1), (1, 3))):
    """Circuit heads point one of three ways on positives but the same way on every negative.

    Their codes vary on positives and are constant on negatives, so |P_h \\ N_h| > |N_h \\ P_h|:
    scoring the sides the wrong way round gives different scores.
    """
    generator = torch.Generator().manual_seed(1)
    n_total = n_layers * n_heads
    directions = torch.nn.functional.normalize(torch.randn(n_total + 4, width, generator=generator), dim=-1)
    positive = directions[:n_total].expand(n_pairs, -1, -1).clone()
    negative = positive.clone()
    for layer, head in circuit:
        flat = layer * n_heads + head
        positive[:, flat] = directions[n_total + torch.arange(n_pairs) % 3]
        negative[:, flat] = directions[n_total + 3]
    return HeadActivations(positive, negative, "result", "mean", n_layers, n_heads), set(circuit)


def test_scores_are_positive_codes_against_negative_codes(monkeypatch):
    """Each seed's scores equal node_scores(codes of positives, codes of negatives) of its SAE."""
    from saekit.codes import head_codes
    from saekit.scoring import node_scores

    activations, _ = asymmetric_circuit()
    saes = []
    original = discovery.train_sae
    monkeypatch.setattr(discovery, "train_sae", lambda *a, **k: saes.append(original(*a, **k)) or saes[-1])
    config = DiscoveryConfig(sae=SAEConfig(d_sae=16, l1_coefficient=1e-3, steps=100), sae_examples=20)
    result = discover(None, _TaskStub(30), config, seeds=[0, 1], activations=activations)
    for sae, scores in zip(saes, result.scores):
        positive, negative = head_codes(sae, activations.positive), head_codes(sae, activations.negative)
        expected = node_scores(positive, negative).reshape(2, 4)
        assert torch.equal(scores, expected)
        assert not torch.equal(expected, node_scores(negative, positive).reshape(2, 4))  # sides matter


def test_discover_trains_on_sae_examples_and_counts_count_examples(monkeypatch):
    """The SAE sees sae_examples examples x every head, seeded by the run's seed; 2 x
    count_examples examples (the counted pairs' positives, then their negatives) are encoded."""
    activations, _ = planted_circuit(n_pairs=20)
    trained, encoded = [], []
    train, encode = discovery.train_sae, discovery.head_codes

    def recording_train(samples, config):
        trained.append((samples, config))
        return train(samples, config)

    def recording_encode(sae, vectors, *args, **kwargs):
        encoded.append(vectors)
        return encode(sae, vectors, *args, **kwargs)

    monkeypatch.setattr(discovery, "train_sae", recording_train)
    monkeypatch.setattr(discovery, "head_codes", recording_encode)
    config = DiscoveryConfig(sae=FAST_SAE, sae_examples=7, count_examples=5)
    discover(None, _TaskStub(20), config, seeds=[3, 8], activations=activations)
    assert [config.seed for _, config in trained] == [3, 8]
    assert all(config == replace(FAST_SAE, seed=seed) for (_, config), seed in zip(trained, [3, 8]))
    assert all(samples.shape == (7 * 8, 16) for samples, _ in trained)
    assert [vectors.shape for vectors in encoded] == [(10, 8, 16)] * 2
    examples = torch.cat([activations.positive, activations.negative])
    for samples, _ in trained:  # whole examples (all heads of one prompt), each one of the task's
        rows = samples.reshape(7, 8, 16)
        assert all(any(torch.equal(row, example) for example in examples) for row in rows)
    for vectors in encoded:  # pair i's negative follows the counted positives in the same order
        for positive, negative in zip(vectors[:5], vectors[5:]):
            pair = next(i for i in range(20) if torch.equal(activations.positive[i], positive))
            assert torch.equal(activations.negative[pair], negative)


def test_result_summaries_are_over_seeds():
    """auc_std is the ddof-1 sd of the per-seed AUCs; ranked_heads orders by the mean score."""
    from saekit.discovery import DiscoveryResult

    scores = torch.tensor([
        [[5.0, 0.0], [1.0, 0.0]],
        [[0.0, 4.0], [1.0, 0.0]],
        [[0.0, 4.0], [1.0, 3.0]],
    ])  # means: [[5/3, 8/3], [1, 1]]; no single seed ranks like the mean
    result = DiscoveryResult(
        task_name="hand", config=DiscoveryConfig(), seeds=(0, 1, 2), scores=scores,
        auc_per_seed=(0.5, 0.7, 0.9), ground_truth=frozenset({(0, 1)}), seconds={}, sae_metrics=(),
    )
    assert result.auc_mean == pytest.approx(0.7)
    assert result.auc_std == pytest.approx(0.2)  # ddof 0 would give 0.163
    assert result.ranked_heads == [(0, 1), (0, 0), (1, 0), (1, 1)]
    torch.testing.assert_close(result.mean_scores, scores.mean(0))


def size_only_circuit(n_pairs=60, n_layers=2, n_heads=4, width=16, circuit=((0, 1), (1, 3))):
    """Every head writes one direction on both sides; circuit heads write it half as loud on negatives."""
    generator = torch.Generator().manual_seed(2)
    n_total = n_layers * n_heads
    directions = torch.nn.functional.normalize(torch.randn(n_total, width, generator=generator), dim=-1)
    size = 1 + 0.1 * torch.rand(2, n_pairs, n_total, 1, generator=generator)
    positive, negative = directions * size[0], directions * size[1]
    for layer, head in circuit:
        negative[:, layer * n_heads + head] *= 0.5
    return HeadActivations(positive, negative, "result", "mean", n_layers, n_heads), set(circuit)


def test_level_codes_find_a_size_only_circuit_that_argmax_codes_miss():
    activations, circuit = size_only_circuit()
    seeds = range(2)
    runs = {
        kind: discover(None, _TaskStub(60), DiscoveryConfig(sae=SAEConfig(l1_coefficient=1e-3, steps=100),
                                                            code_kind=kind),
                       seeds=seeds, ground_truth=circuit, activations=activations)
        for kind in CODE_KINDS
    }
    assert runs["argmax_level"].auc_mean >= 0.9
    assert runs["argmax"].auc_mean <= 0.65
    # levels refine argmax codes, so a code only on positives stays only on positives: never lower
    assert (runs["argmax_level"].scores >= runs["argmax"].scores).all()
