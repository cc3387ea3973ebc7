"""Every mistake a user makes gets a saekit error naming the problem: one row per bad input.

Each row is (id, call, expected error class, words the message must contain); the calls are
the slips users make from Python and Jupyter (issue 19). The second table runs the inputs that
have a command-line form through ``saekit``'s ``main``: a non-zero exit, one line on stderr,
no traceback. Expensive objects (the toy model, the tiny GPT-2, damaged folders) are built once
per module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import saekit
from saekit.ablation import circuit_table, evaluate_circuit, head_patching_effects, head_patching_prompt_effects
from saekit.activations import head_activations
from saekit.baselines import activation_patching_scores
from saekit.cli import main
from saekit.codes import head_codes
from saekit.discovery import DiscoveryConfig, discover, paper_config
from saekit.errors import (
    HeadSetError,
    ModelError,
    ModelNotFoundError,
    SAEError,
    SaekitError,
    TaskError,
)
from saekit.sae import SAEConfig, load_sae, save_sae
from saekit.sae.base import ARCHITECTURES
from saekit.scoring import node_scores, roc_auc
from saekit.tasks import make_task, task_from_strings
from saekit.tasks.ground_truth import heads_to_mask
from saekit.testing import save_random_gpt2
from saekit.zoo import export_model, toy_model_dir
from saekit.zoo.ground_truth import write_ground_truth

TOY = toy_model_dir("toy-4l")


def _toy_copy(root: Path, name: str, damage) -> Path:
    folder = root / name
    shutil.copytree(TOY, folder)
    damage(folder)
    return folder


def _hf_copy(root: Path, source: Path, name: str, damage) -> Path:
    folder = root / name
    shutil.copytree(source, folder)
    damage(folder)
    return folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _trailing_comma(path: Path) -> None:
    text = path.read_text().rstrip()
    path.write_text(text[:-1].rstrip() + ",\n}")


def _edit_tensors(path: Path, edit) -> None:
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def _poison(tensors: dict) -> None:
    name = next(iter(tensors))
    tensors[name] = torch.full_like(tensors[name], float("nan"))


def _drop_one(tensors: dict) -> None:
    tensors.pop(sorted(tensors)[-1])


def _remove_tokenizer(folder: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, toy_4l, tiny_gpt2, tiny_gpt2_dir, gpt2_tokenizer_dir):
    """Everything the rows need, built once."""
    root = tmp_path_factory.mktemp("user-errors")
    c = types.SimpleNamespace(toy=toy_4l, gpt2=tiny_gpt2, root=root)
    c.toy_task = make_task("ioi", toy_4l, n_pairs=4)
    c.gpt2_task = make_task("ioi", tiny_gpt2, n_pairs=4)
    c.tok = toy_4l.tokenizer
    c.shape = (toy_4l.cfg.n_layers, toy_4l.cfg.n_heads)
    long_words = " ".join(["John"] * (toy_4l.cfg.n_ctx + 5))
    c.long_task = task_from_strings(c.tok, "long", [long_words + " Mary"], [long_words + " John"], ["Mary"], ["John"])
    c.wide_answer_task = dataclasses.replace(
        c.toy_task, answer_tokens=torch.full_like(c.toy_task.answer_tokens, toy_4l.cfg.d_vocab + 3)
    )
    # Toy-layout folders, each with one thing wrong.
    c.toy_truncated = _toy_copy(root, "toy-truncated", lambda f: _truncate(f / "model.safetensors"))
    c.toy_no_config = _toy_copy(root, "toy-no-config", lambda f: (f / "config.json").unlink())
    c.toy_comma = _toy_copy(root, "toy-comma", lambda f: _trailing_comma(f / "config.json"))
    c.toy_missing = _toy_copy(root, "toy-missing", lambda f: _edit_tensors(f / "model.safetensors", _drop_one))
    c.toy_nan = _toy_copy(root, "toy-nan", lambda f: _edit_tensors(f / "model.safetensors", _poison))
    c.toy_no_tl_config = _toy_copy(root, "toy-no-tl", lambda f: (f / "config.json").write_text('{"name": "x"}'))
    # Hugging Face folders, each with one thing wrong.
    c.hf_truncated = _hf_copy(root, tiny_gpt2_dir, "hf-truncated", lambda f: _truncate(f / "model.safetensors"))
    c.hf_comma = _hf_copy(root, tiny_gpt2_dir, "hf-comma", lambda f: _trailing_comma(f / "config.json"))
    c.hf_no_tokenizer = _hf_copy(root, tiny_gpt2_dir, "hf-no-tokenizer", _remove_tokenizer)
    c.hf_no_config = _hf_copy(root, tiny_gpt2_dir, "hf-no-config", lambda f: (f / "config.json").unlink())
    c.hf_small_vocab = save_random_gpt2(root / "hf-small-vocab", gpt2_tokenizer_dir, vocab_size=1000)
    # SAE folders, each with one thing wrong.
    sae = ARCHITECTURES["relu"](8, SAEConfig(d_sae=16))
    c.sae = sae
    good = save_sae(sae, root / "sae")
    for name, damage in {
        "sae-truncated": lambda f: _truncate(f / "sae_weights.safetensors"),
        "sae-comma": lambda f: _trailing_comma(f / "cfg.json"),
        "sae-no-config": lambda f: (f / "cfg.json").unlink(),
        "sae-missing": lambda f: _edit_tensors(f / "sae_weights.safetensors", _drop_one),
        "sae-nan": lambda f: _edit_tensors(f / "sae_weights.safetensors", _poison),
    }.items():
        shutil.copytree(good, root / name)
        damage(root / name)
    c.a_file = root / "a-file"
    c.a_file.write_text("not a folder")
    return c


def _with_nan_weights(model, call):
    """Run ``call`` with one weight matrix of ``model`` set to NaN, then restore it."""
    weights = next(p for p in model.parameters() if p.ndim == 2)
    saved = weights.detach().clone()
    try:
        with torch.no_grad():
            weights.fill_(float("nan"))
        call()
    finally:
        with torch.no_grad():
            weights.copy_(saved)


def _bidirectional(model):
    """A stand-in with the model's attributes but bidirectional attention (BERT-like)."""
    cfg = types.SimpleNamespace(**{**vars(model.cfg), "attention_dir": "bidirectional"})
    return types.SimpleNamespace(cfg=cfg, hook_dict=model.hook_dict, W_O=model.W_O, named_parameters=model.named_parameters)


_FAST_SAE = dict(d_sae=16, steps=5)

# (id, call taking ctx, error class, words the message must contain)
ROWS = [
    # Ordinary Jupyter slips in discover and its configs.
    ("seeds-int", lambda c: discover(c.toy, c.toy_task, seeds=10), SaekitError, ["seeds=range(10)"]),
    ("seeds-string", lambda c: discover(c.toy, c.toy_task, seeds="0"), SaekitError, ["iterable of integers"]),
    ("seeds-empty", lambda c: discover(c.toy, c.toy_task, seeds=[]), SaekitError, ["at least one seed"]),
    ("seeds-float", lambda c: discover(c.toy, c.toy_task, seeds=[0.5]), SaekitError, ["integers"]),
    ("config-is-sae-config", lambda c: discover(c.toy, c.toy_task, SAEConfig()), SaekitError, ["DiscoveryConfig(sae=...)"]),
    ("config-is-dict", lambda c: discover(c.toy, c.toy_task, {"sae_examples": 4}), SaekitError, ["must be a DiscoveryConfig", "dict"]),
    ("model-is-name", lambda c: discover("toy-4l", c.toy_task), ModelError, ["saekit.load_model('toy-4l')"]),
    ("task-is-name", lambda c: discover(c.toy, "ioi"), TaskError, ["ContrastiveTask", "str"]),
    ("paper-config-misspelt-sae-field", lambda c: paper_config("ioi", l1_coeficient=0.1), SaekitError, ["l1_coeficient", "did you mean 'l1_coefficient'"]),
    ("paper-config-misspelt-field", lambda c: paper_config("ioi", sae_example=5), SaekitError, ["did you mean 'sae_examples'"]),
    ("paper-config-sae-object", lambda c: paper_config("ioi", sae=SAEConfig()), SaekitError, ["DiscoveryConfig(sae=...)"]),
    ("config-float-count", lambda c: DiscoveryConfig(sae_examples=2.5), SaekitError, ["sae_examples", "2.5"]),
    ("config-unknown-score", lambda c: DiscoveryConfig(score="nodes"), SaekitError, ["Unknown score 'nodes'"]),
    ("config-json-trailing-comma", lambda c: DiscoveryConfig.from_json('{"sae_examples": 5,}'), SaekitError, ["not valid JSON"]),
    ("config-json-not-object", lambda c: DiscoveryConfig.from_json("[1, 2]"), SaekitError, ["dict of its fields", "list"]),
    ("config-dict-misspelt", lambda c: DiscoveryConfig.from_dict({"scor": "node"}), SaekitError, ["did you mean 'score'"]),
    ("sae-config-misspelt", lambda c: SAEConfig.from_dict({"d_sea": 10}), SAEError, ["did you mean 'd_sae'"]),
    ("sae-config-float-width", lambda c: SAEConfig(d_sae=2.5), SAEError, ["d_sae", "positive integer"]),
    ("too-many-sae-examples", lambda c: discover(c.toy, c.toy_task, paper_config("ioi", sae_examples=50)), TaskError, ["sae_examples=50", "8 examples"]),
    # Tasks: counts, tokenizers and texts.
    ("n-pairs-float", lambda c: make_task("ioi", c.toy, n_pairs=2.5), TaskError, ["n_pairs", "2.5"]),
    ("n-pairs-zero", lambda c: make_task("ioi", c.toy, n_pairs=0), TaskError, ["n_pairs", "at least 1"]),
    ("n-pairs-bool", lambda c: make_task("ioi", c.toy, n_pairs=True), TaskError, ["n_pairs", "True"]),
    ("seed-negative", lambda c: make_task("ioi", c.toy, seed=-1), TaskError, ["seed", "at least 0"]),
    ("tokenizer-is-name", lambda c: make_task("ioi", "gpt2"), TaskError, ["not the string 'gpt2'"]),
    ("tokenizer-is-number", lambda c: make_task("ioi", 42), TaskError, ["Hugging Face tokenizer", "int"]),
    ("model-without-tokenizer", lambda c: make_task("ioi", types.SimpleNamespace(tokenizer=None)), TaskError, ["no tokenizer"]),
    ("unknown-task", lambda c: make_task("iol", c.toy), TaskError, ["Unknown task 'iol'"]),
    ("prompts-one-string", lambda c: task_from_strings(c.tok, "t", "John Mary", ["John John"], ["Mary"], ["John"]), TaskError, ["positives", "single string"]),
    ("prompt-not-string", lambda c: task_from_strings(c.tok, "t", [12], ["John"], ["Mary"], ["John"]), TaskError, ["positives[0]", "int"]),
    ("answer-not-string", lambda c: task_from_strings(c.tok, "t", ["John Mary"], ["John John"], [None], ["John"]), TaskError, ["answers[0]", "NoneType"]),
    ("answer-list-not-strings", lambda c: task_from_strings(c.tok, "t", ["John Mary"], ["John John"], [["Mary", 3]], ["John"]), TaskError, ["answers[0]", "list of strings"]),
    ("tokenizer-object-wrong", lambda c: task_from_strings(object(), "t", ["a"], ["b"], ["c"], ["d"]), TaskError, ["Hugging Face tokenizer", "object"]),
    ("unknown-metric", lambda c: task_from_strings(c.tok, "t", ["John Mary"], ["John John"], ["Mary"], ["John"], metric="logitdiff"), TaskError, ["Unknown metric 'logitdiff'"]),
    ("uneven-lists", lambda c: task_from_strings(c.tok, "t", ["John Mary"], [], ["Mary"], ["John"]), TaskError, ["one of each per pair"]),
    # A task that does not fit the model.
    ("bpe-task-on-word-model", lambda c: head_activations(c.toy, c.gpt2_task), TaskError, ["tokenized for another model", "make_task"]),
    ("bpe-task-discover", lambda c: discover(c.toy, c.gpt2_task), TaskError, ["tokenized for another model", "vocabulary"]),
    ("bpe-task-circuit-table", lambda c: circuit_table(c.toy, c.gpt2_task, torch.zeros(c.shape), top_k=2), TaskError, ["circuit_table()", "vocabulary"]),
    ("bpe-task-baseline", lambda c: activation_patching_scores(c.toy, c.gpt2_task), TaskError, ["activation_patching_scores()", "vocabulary"]),
    ("answer-beyond-unembedding", lambda c: head_patching_effects(c.toy, c.wide_answer_task), TaskError, ["answer token id", "unembedding"]),
    ("bpe-task-patching", lambda c: head_patching_effects(c.toy, c.gpt2_task), TaskError, ["head_patching_effects()", "vocabulary"]),
    ("bpe-task-prompt-patching", lambda c: head_patching_prompt_effects(c.toy, c.gpt2_task), TaskError, ["head_patching_prompt_effects()", "vocabulary"]),
    ("prompt-longer-than-context", lambda c: head_activations(c.toy, c.long_task), TaskError, ["n_ctx", "shorter prompts"]),
    ("model-name-to-ablation", lambda c: evaluate_circuit("toy-4l", c.toy_task, [(0, 0)]), ModelError, ["evaluate_circuit()", "load_model"]),
    ("tokenizer-as-model", lambda c: head_activations(c.tok, c.toy_task), ModelError, ["takes a TransformerLens model", "saekit.load_model"]),
    ("bidirectional-model", lambda c: head_activations(_bidirectional(c.toy), c.toy_task), ModelError, ["not causal", "bidirectional"]),
    ("nan-weights-discover", lambda c: _with_nan_weights(c.toy, lambda: discover(c.toy, c.toy_task)), ModelError, ["NaN or inf"]),
    ("nan-weights-validate", lambda c: _with_nan_weights(c.toy, lambda: circuit_table(c.toy, c.toy_task, torch.zeros(c.shape), top_k=2)), ModelError, ["NaN or inf"]),
    ("tokenizer-larger-than-vocab", lambda c: saekit.load_model(c.hf_small_vocab), ModelError, ["50257 tokens", "1000"]),
    ("hf-folder-without-tokenizer", lambda c: saekit.load_model(c.hf_no_tokenizer), ModelNotFoundError, ["no tokenizer files"]),
    # Damaged or partial files.
    ("toy-truncated-weights", lambda c: saekit.load_model(c.toy_truncated), ModelError, ["model.safetensors", "damaged or truncated"]),
    ("toy-missing-config", lambda c: saekit.load_model(c.toy_no_config), ModelError, ["config.json is missing"]),
    ("toy-config-trailing-comma", lambda c: saekit.load_model(c.toy_comma), ModelError, ["config.json", "not valid JSON"]),
    ("toy-config-without-shape", lambda c: saekit.load_model(c.toy_no_tl_config), ModelError, ["no tl_config"]),
    ("toy-missing-tensor", lambda c: saekit.load_model(c.toy_missing), ModelError, ["do not fit"]),
    ("toy-nan-weights", lambda c: saekit.load_model(c.toy_nan), ModelError, ["NaN or inf"]),
    ("hf-truncated-weights", lambda c: saekit.load_model(c.hf_truncated), ModelError, ["hf-truncated", "damaged"]),
    ("hf-config-trailing-comma", lambda c: saekit.load_model(c.hf_comma), ModelError, ["config.json", "not valid JSON"]),
    ("hf-missing-config", lambda c: saekit.load_model(c.hf_no_config), ModelNotFoundError, ["no config.json"]),
    ("sae-truncated-weights", lambda c: load_sae(c.root / "sae-truncated"), SAEError, ["sae_weights.safetensors", "damaged or truncated"]),
    ("sae-config-trailing-comma", lambda c: load_sae(c.root / "sae-comma"), SAEError, ["cfg.json", "not valid JSON"]),
    ("sae-missing-config", lambda c: load_sae(c.root / "sae-no-config"), SAEError, ["cfg.json missing"]),
    ("sae-missing-tensor", lambda c: load_sae(c.root / "sae-missing"), SAEError, ["do not fit"]),
    ("sae-nan-weights", lambda c: load_sae(c.root / "sae-nan"), SAEError, ["NaN or inf"]),
    ("save-sae-not-an-sae", lambda c: save_sae(c.toy, c.root / "x"), SAEError, ["saekit SAE"]),
    ("save-sae-onto-a-file", lambda c: save_sae(c.sae, c.a_file), SaekitError, ["is a file, not a folder"]),
    ("export-onto-a-file", lambda c: export_model(c.toy, c.a_file), SaekitError, ["is a file, not a folder"]),
    ("ground-truth-into-a-folder", lambda c: write_ground_truth("toy-4l", c.root), SaekitError, ["is a folder", "name a file"]),
    ("load-sae-absent-gpu", lambda c: load_sae(c.root / "sae", device="cuda:99"), SaekitError, ["device='cuda:99'"]),
    # Names and devices.
    ("unknown-model-name", lambda c: saekit.load_model("gpt2-smal"), ModelNotFoundError, ["Unknown model 'gpt2-smal'", "owner/name"]),
    ("mistyped-folder", lambda c: saekit.load_model("./models/my-gpt"), ModelNotFoundError, ["no folder './models/my-gpt'"]),
    ("name-with-a-space", lambda c: saekit.load_model("toy 4l"), ModelNotFoundError, ["Unknown model 'toy 4l'"]),
    ("absent-gpu", lambda c: saekit.load_model("toy-4l", device="cuda:99"), SaekitError, ["device='cuda:99'"]),
    ("unknown-device", lambda c: saekit.load_model("toy-4l", device="gpu"), SaekitError, ["Unknown device 'gpu'"]),
    # Codes, scores and head sets.
    ("float-codes", lambda c: node_scores(torch.rand(4, 8), torch.rand(4, 8)), SAEError, ["integer tensor", "codes_from_latents"]),
    ("nan-scores", lambda c: roc_auc(torch.full(c.shape, float("nan")), {(0, 0)}), SAEError, ["NaN or inf"]),
    ("codes-wrong-width", lambda c: head_codes(c.sae, torch.zeros(2, 3, 5)), SAEError, ["width 8"]),
    ("head-set-string", lambda c: heads_to_mask("12", *c.shape), HeadSetError, ["12"]),
    ("scores-wrong-shape", lambda c: circuit_table(c.toy, c.toy_task, torch.zeros(3, 3), top_k=2), HeadSetError, ["do not fit"]),
]


@pytest.mark.parametrize(("call", "error", "words"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input_gets_a_saekit_error_naming_it(ctx, call, error, words):
    with pytest.raises(error) as raised:
        call(ctx)
    message = str(raised.value)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def test_the_table_has_at_least_sixty_rows():
    assert len(ROWS) >= 60 and len({row[0] for row in ROWS}) == len(ROWS)


# (id, argv with {placeholders} for ctx folders, words stderr must contain)
CLI_ROWS = [
    ("download-offline", ["models", "--download", "gpt2-small"], ["Could not download", "gpt2-small"]),
    ("download-mistyped-folder", ["models", "--download", "./models/my-gpt"], ["no folder"]),
    ("unknown-model-name", ["discover", "--model", "gpt2-smal", "--task", "ioi"], ["Unknown model 'gpt2-smal'"]),
    ("mistyped-folder", ["discover", "--model", "./models/my-gpt", "--task", "ioi"], ["no folder"]),
    ("absent-gpu", ["discover", "--model", "toy-4l", "--task", "ioi", "--device", "cuda:99"], ["device='cuda:99'"]),
    ("unknown-device", ["validate", "--model", "toy-4l", "--task", "ioi", "--device", "gpu"], ["Unknown device 'gpu'"]),
    ("unknown-task", ["discover", "--model", "toy-4l", "--task", "iol"], ["Unknown task 'iol'"]),
    ("seeds-zero", ["discover", "--model", "toy-4l", "--task", "ioi", "--seeds", "0"], ["--seeds: must be at least 1"]),
    ("n-pairs-float", ["discover", "--model", "toy-4l", "--task", "ioi", "--n-pairs", "2.5"], ["--n-pairs: '2.5' is not an integer"]),
    ("n-pairs-zero", ["compare", "--model", "toy-4l", "--task", "ioi", "--n-pairs", "0"], ["--n-pairs: must be at least 1"]),
    ("unknown-sae", ["discover", "--model", "toy-4l", "--task", "ioi", "--sae", "nope"], ["Unknown SAE architecture"]),
    ("too-many-sae-examples", ["discover", "--model", "toy-4l", "--task", "ioi", "--n-pairs", "4", "--sae-examples", "50"], ["sae_examples=50"]),
    ("top-k-beyond-heads", ["validate", "--model", "toy-4l", "--task", "ioi", "--n-pairs", "4", "--top-k", "999"], ["k must be between 0 and 32"]),
    ("toy-truncated-weights", ["discover", "--model", "{toy_truncated}", "--task", "ioi"], ["damaged or truncated"]),
    ("toy-missing-config", ["validate", "--model", "{toy_no_config}", "--task", "ioi"], ["config.json is missing"]),
    ("toy-config-trailing-comma", ["discover", "--model", "{toy_comma}", "--task", "ioi"], ["not valid JSON"]),
    ("toy-nan-weights", ["validate", "--model", "{toy_nan}", "--task", "ioi"], ["NaN or inf"]),
    ("hf-truncated-weights", ["discover", "--model", "{hf_truncated}", "--task", "ioi"], ["damaged"]),
    ("hf-folder-without-tokenizer", ["discover", "--model", "{hf_no_tokenizer}", "--task", "ioi"], ["no tokenizer files"]),
    ("tokenizer-larger-than-vocab", ["discover", "--model", "{hf_small_vocab}", "--task", "ioi"], ["50257 tokens"]),
    ("ground-truth-of-pretrained", ["zoo", "ground-truth", "--model", "gpt2-small"], ["not a shipped toy model"]),
    ("zoo-train-onto-a-file", ["zoo", "train", "--out", "{a_file}"], ["is a file, not a folder"]),
    ("zoo-export-onto-a-file", ["zoo", "export", "--model", "toy-4l", "--out", "{a_file}"], ["is a file, not a folder"]),
    ("ground-truth-into-a-folder", ["zoo", "ground-truth", "--out", "{root}"], ["is a folder"]),
    ("zoo-train-zero-steps", ["zoo", "train", "--steps", "0"], ["--steps: must be at least 1"]),
    ("threads-zero", ["zoo", "train", "--threads", "0"], ["--threads: must be at least 1"]),
]


@pytest.mark.parametrize(("argv", "words"), [row[1:] for row in CLI_ROWS], ids=[row[0] for row in CLI_ROWS])
def test_bad_input_on_the_command_line_is_one_line_without_a_traceback(ctx, capsys, argv, words):
    argv = [arg.format(**{k: v for k, v in vars(ctx).items() if isinstance(v, Path)}) for arg in argv]
    status = main(argv)
    err = capsys.readouterr().err
    assert status != 0
    assert "Traceback" not in err
    assert err.startswith(("saekit: error:", "usage: saekit")), err
    for word in words:
        assert word in err, f"{word!r} not in: {err}"


def test_an_unexpected_error_is_one_line_with_a_debug_hint_and_debug_shows_the_traceback(monkeypatch, capsys):
    import saekit.models

    def broken():
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(saekit.models, "list_models", broken)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError: a bug" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "models"])


def test_the_real_command_prints_no_traceback_and_refuses_unknown_names_without_transformerlens(tmp_path):
    """In fresh interpreters, as a user runs them; the unknown name is refused in well under a second."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "saekit", "discover", "--model", "./models/my-gpt", "--task", "ioi"],
        capture_output=True, text=True, env=env,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "no folder" in result.stderr
    code = (
        "import sys, time; import saekit; start = time.perf_counter()\n"
        "try:\n    saekit.load_model('gpt2-smal')\n"
        "except saekit.ModelNotFoundError:\n"
        "    print(time.perf_counter() - start, 'transformer_lens' in sys.modules)"
    )
    seconds, imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert imported == "False" and float(seconds) < 0.5
