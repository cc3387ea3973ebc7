"""Atomic saves: an interrupted save leaves the old artefact or the new one, never a mix.

Each writer is run once to count its write steps (file writes, renames, copies), then once per
step with that step failing; afterwards the folder must load exactly as the old artefact, and
no temporary sibling may be left behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

import saekit._io
import saekit.sae.io
from saekit._io import atomic_folder, dumps_json, write_json
from saekit.errors import SaekitError
from saekit.sae import SAEConfig, load_sae, save_sae
from saekit.sae.base import ARCHITECTURES
from saekit.zoo.model import AttnOnlyTransformer, ToyModelConfig, load_toy_module
from saekit.zoo.train import TrainingConfig, save_toy_model


class _Interrupted(KeyboardInterrupt):
    """What the injected failure raises: like Ctrl-C, not an ordinary Exception."""


class _WriteSteps:
    """Wraps every write saekit's savers make; ``fail_at`` makes the n-th one raise."""

    def __init__(self, monkeypatch):
        self.count, self.fail_at = 0, None
        targets = [
            (saekit.sae.io, "save_file"), (safetensors.torch, "save_file"), (Path, "write_text"),
            (os, "replace"), (shutil, "copy2"), (shutil, "copytree"),
        ]
        from transformers import PreTrainedTokenizerFast

        targets.append((PreTrainedTokenizerFast, "save_pretrained"))
        for owner, name in targets:
            monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name)))

    def _wrap(self, function):
        def step(*args, **kwargs):
            self.count += 1
            if self.count == self.fail_at:
                raise _Interrupted(f"write step {self.count}")
            return function(*args, **kwargs)

        return step

    def run(self, save, fail_at=None) -> None:
        self.count, self.fail_at = 0, fail_at
        save()


def _sae(seed: int):
    config = SAEConfig(d_sae=8, seed=seed)
    return ARCHITECTURES["relu"](6, config)


def _assert_no_leftovers(parent: Path, expected: set[str]) -> None:
    assert {p.name for p in parent.iterdir()} == expected


def test_interrupted_save_sae_leaves_the_old_sae_at_every_step(tmp_path, monkeypatch):
    folder = tmp_path / "sae"
    old, new = _sae(0), _sae(1)

    def same(loaded, sae):
        return all(torch.equal(a, b) for a, b in zip(loaded.export_tensors().values(), sae.export_tensors().values()))

    steps = _WriteSteps(monkeypatch)

    def start_from_old() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        save_sae(old, folder)
        (folder / "notes.txt").write_text("mine")

    start_from_old()
    steps.run(lambda: save_sae(new, folder))
    total = steps.count
    assert total == 5  # weights, config, copying notes.txt over, setting the old aside, the swap
    for failing in range(1, total + 1):
        start_from_old()
        with pytest.raises(_Interrupted):
            steps.run(lambda: save_sae(new, folder), fail_at=failing)
        assert same(load_sae(folder), old), f"step {failing} of {total} left a mixed SAE"
        assert (folder / "notes.txt").read_text() == "mine"
        _assert_no_leftovers(tmp_path, {"sae"})
    start_from_old()
    steps.run(lambda: save_sae(new, folder))
    assert same(load_sae(folder), new)
    assert (folder / "notes.txt").read_text() == "mine"  # other files in the folder are kept


def test_interrupted_save_toy_model_leaves_the_old_model_at_every_step(tmp_path, monkeypatch):
    small = ToyModelConfig(d_vocab=TrainingConfig().model.d_vocab, n_layers=1, n_heads=2, d_model=8, d_head=4, n_ctx=16)
    config = TrainingConfig(model=small)
    old, new = AttnOnlyTransformer(small, seed=0), AttnOnlyTransformer(small, seed=1)
    folder = tmp_path / "toy"

    def same(module_folder, model):
        loaded = load_toy_module(module_folder).state_dict()
        return all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())

    steps = _WriteSteps(monkeypatch)

    def start_from_old() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        save_toy_model(old, config, folder)
        (folder / "ground_truth.json").write_text("{}")

    start_from_old()
    tokenizer_files = sorted(p.name for p in (folder / "tokenizer").iterdir())
    steps.run(lambda: save_toy_model(new, config, folder))
    total = steps.count
    assert total >= 8  # weights, tokenizer (its files, its fix-up, its swap), config, carry-over, swap
    for failing in range(1, total + 1):
        start_from_old()
        with pytest.raises(_Interrupted):
            steps.run(lambda: save_toy_model(new, config, folder), fail_at=failing)
        assert same(folder, old), f"step {failing} of {total} left a mixed model"
        assert sorted(p.name for p in (folder / "tokenizer").iterdir()) == tokenizer_files
        assert json.loads((folder / "config.json").read_text())["tl_config"]["d_model"] == 8
        _assert_no_leftovers(tmp_path, {"toy"})
    start_from_old()
    steps.run(lambda: save_toy_model(new, config, folder))
    assert same(folder, new)
    assert (folder / "ground_truth.json").read_text() == "{}"  # kept beside the retrained model


def test_interrupted_ground_truth_write_leaves_the_old_file(tmp_path, monkeypatch):
    from saekit.zoo import ground_truth

    monkeypatch.setattr(ground_truth, "compute_ground_truth", lambda name: {"model": name, "new": True})
    path = tmp_path / "ground_truth.json"
    path.write_text('{"old": true}\n')
    steps = _WriteSteps(monkeypatch)
    for failing in (1, 2):  # the temporary file's content, then the rename
        with pytest.raises(_Interrupted):
            steps.run(lambda: ground_truth.write_ground_truth("toy-4l", path), fail_at=failing)
        assert json.loads(path.read_text()) == {"old": True}
        _assert_no_leftovers(tmp_path, {"ground_truth.json"})
    steps.run(lambda: ground_truth.write_ground_truth("toy-4l", path))
    assert json.loads(path.read_text())["new"] is True


def test_atomic_folder_puts_the_old_folder_back_when_the_swap_fails(tmp_path, monkeypatch):
    folder = tmp_path / "artefact"
    folder.mkdir()
    (folder / "a.txt").write_text("old")
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:  # the new folder taking the old one's name
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(saekit._io.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"), atomic_folder(folder) as staging:
        (staging / "a.txt").write_text("new")
    assert (folder / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["artefact"]
    assert calls[2] == (calls[0][1], "artefact")  # moved back from where it was set aside


def test_atomic_folder_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(SaekitError, match="is a file, not a folder"), atomic_folder(tmp_path / "taken"):
        pass


def test_json_writers_turn_nan_and_inf_into_null(tmp_path):
    value = {"auc": float("nan"), "rows": [1.0, float("inf"), (float("-inf"), 2)], "name": "x"}
    expected = {"auc": None, "rows": [1.0, None, [None, 2]], "name": "x"}
    assert json.loads(dumps_json(value)) == expected
    assert "NaN" not in write_json(tmp_path / "out.json", value).read_text()
    assert json.loads((tmp_path / "out.json").read_text()) == expected


def test_results_of_a_collapsed_sae_serialise_with_null_not_nan():
    from saekit.discovery import DiscoveryConfig, DiscoveryResult

    result = DiscoveryResult(
        task_name="t", config=DiscoveryConfig(), seeds=(0,), scores=torch.zeros(1, 2, 2),
        auc_per_seed=(float("nan"),), ground_truth=frozenset({(0, 0)}), seconds={"total": 1.0},
        sae_metrics=({"explained_variance": float("nan"), "l0": 0.0},),
    )
    saved = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert saved["sae_metrics"] == [{"explained_variance": None, "l0": 0.0}]
    assert saved["auc"]["per_seed"] == [None] and saved["auc"]["mean"] is None
