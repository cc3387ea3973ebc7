"""Bringing your own model (docs/adapting.md): a TransformerLens model built outside saekit works
as an object in every function that takes a model, and ``export_model`` writes it as a folder
that ``load_model`` reads back to the same model."""

from __future__ import annotations

import json

import pytest
import torch

import saekit
from saekit import _tl
from saekit.ablation import (
    ablation_runs,
    circuit_table,
    evaluate_circuit,
    faithfulness_curves,
    head_patching_effects,
    prune_heads,
)
from saekit.activations import head_activations
from saekit.baselines import BASELINES
from saekit.cli import main
from saekit.diagnose import diagnose
from saekit.discovery import discover, paper_config
from saekit.errors import ModelError
from saekit.heads import attention_patterns, direct_logit_attribution
from saekit.tasks import make_task
from saekit.zoo import export_model, toy_model_dir
from saekit.zoo.evaluate import evaluate_task

#: A small GPT-2-style model with MLPs, in the toy models' word-level vocabulary.
SHAPE = {
    "n_layers": 2, "n_heads": 4, "d_model": 32, "d_head": 8, "d_mlp": 64, "act_fn": "gelu",
    "n_ctx": 64, "normalization_type": "LN", "positional_embedding_type": "standard",
    "attn_only": False, "default_prepend_bos": True, "original_architecture": "my-own-model",
}


def build_own_model():
    """What a researcher does with TransformerLens alone (no saekit): build a random-init model."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(toy_model_dir("toy-4l") / "tokenizer")
    config = {**SHAPE, "d_vocab": len(tokenizer), "d_vocab_out": len(tokenizer)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if _tl.TL_MAJOR >= 4:
            import transformer_lens.model_bridge.sources.native  # noqa: F401  (registers boot_native)
            from transformer_lens.config import TransformerBridgeConfig
            from transformer_lens.model_bridge import TransformerBridge

            model = TransformerBridge.boot_native(TransformerBridgeConfig.from_dict(config), tokenizer=tokenizer)
        else:  # pragma: no cover - TransformerLens 3.9
            from transformer_lens import HookedTransformer, HookedTransformerConfig

            model = HookedTransformer(HookedTransformerConfig(**config), tokenizer=tokenizer)
    return model.eval()


@pytest.fixture(scope="module")
def own_model():
    return build_own_model()


@pytest.fixture(scope="module")
def task(own_model):
    return make_task("ioi", own_model, n_pairs=6)


def test_a_model_object_works_in_every_function_that_takes_a_model(own_model, task):
    shape = (SHAPE["n_layers"], SHAPE["n_heads"])
    scores = torch.arange(8.0).reshape(shape)
    assert head_activations(own_model, task, progress=False).positive.shape == (6, 8, SHAPE["d_model"])
    config = paper_config("ioi", sae_examples=4, d_sae=16, steps=20)
    assert discover(own_model, task, config, progress=False).scores.shape == (1, *shape)
    assert head_patching_effects(own_model, task).shape == shape
    assert evaluate_circuit(own_model, task, [(1, 0)])[0].n_heads == 1
    assert ablation_runs(own_model, task, torch.ones(1, *shape, dtype=torch.bool)).metric.shape == (1, 6)
    assert circuit_table(own_model, task, scores, top_k=2, n_random=2).found_circuit.n_heads == 2
    assert faithfulness_curves(own_model, task, scores, ks=[0, 4, 8], n_random=1).n_kept == [0, 4, 8]
    assert prune_heads(own_model, task).ends.full == pytest.approx(evaluate_task(own_model, task).pos_metric, abs=1e-4)
    for name, method in BASELINES.items():
        assert method(own_model, task).scores.shape == shape, name
    assert diagnose(own_model, task, progress=False).d_prime.shape == shape
    assert attention_patterns(own_model, task, [(0, 1)]).pattern.shape[0] == 1
    assert direct_logit_attribution(own_model, task).mean().shape == shape


def test_an_exported_model_loads_back_as_the_same_model_and_discover_runs_on_it(own_model, task, tmp_path):
    folder = export_model(own_model, tmp_path / "my-model", description="my own model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer"]
    document = json.loads((folder / "config.json").read_text())
    assert document["description"] == "my own model" and document["tl_config"]["d_mlp"] == 64

    loaded = saekit.load_model(folder)
    tokens = task.positive_tokens
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), own_model(tokens), atol=1e-5, rtol=1e-5)
    config = paper_config("ioi", sae_examples=4, d_sae=16, steps=20)
    from_object = discover(own_model, task, config, seeds=[0, 1], progress=False)
    from_folder = discover(loaded, make_task("ioi", loaded, n_pairs=6), config, seeds=[0, 1], progress=False)
    torch.testing.assert_close(from_folder.scores, from_object.scores)


def test_export_command_writes_a_folder_load_model_reads(tmp_path, toy_4l, capsys):
    assert main(["zoo", "export", "--model", "toy-4l", "--out", str(tmp_path / "copy")]) == 0
    assert "wrote" in capsys.readouterr().out
    copy = saekit.load_model(tmp_path / "copy")
    tokens = torch.arange(12)[None]
    with torch.no_grad():
        torch.testing.assert_close(copy(tokens), toy_4l(tokens))


def test_export_refuses_a_model_without_tokenizer_and_a_format_it_cannot_describe(own_model, tmp_path, monkeypatch):
    monkeypatch.setattr(own_model, "tokenizer", None)
    with pytest.raises(ModelError, match="no tokenizer"):
        export_model(own_model, tmp_path / "a")
    monkeypatch.undo()
    monkeypatch.setattr(own_model.cfg, "positional_embedding_type", "rotary")
    with pytest.raises(ModelError, match="GPT-2-style.*rotary.*save_pretrained"):
        export_model(own_model, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_keeps_the_old_folder_when_the_written_one_does_not_reproduce_the_model(own_model, tmp_path, monkeypatch):
    folder = export_model(own_model, tmp_path / "m")
    before = (folder / "model.safetensors").read_bytes()
    import saekit.zoo

    real = saekit.zoo._ht_state_dict

    def drop_the_mlps(model, tl_config):  # a part the format would lose
        return {k: (torch.zeros_like(v) if ".mlp." in k else v) for k, v in real(model, tl_config).items()}

    monkeypatch.setattr(saekit.zoo, "_ht_state_dict", drop_the_mlps)
    with pytest.raises(ModelError, match="does not reproduce the model's logits"):
        export_model(own_model, folder)
    assert (folder / "model.safetensors").read_bytes() == before
