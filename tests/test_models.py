"""Model loading: local Hugging Face folders, offline failures, the ``saekit models`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

import saekit
from saekit import ModelNotCachedError, ModelNotFoundError, _tl
from saekit.cli import main


def test_local_folder_gives_the_same_logits_as_hugging_face(tiny_gpt2_dir, tiny_gpt2):
    from transformers import GPT2LMHeadModel

    hf_model = GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir, attn_implementation="eager").eval()
    tokens = torch.tensor([[50256, 15496, 995, 11, 318, 257]])
    with torch.no_grad():
        hf_logits = hf_model(tokens).logits
        tl_logits = tiny_gpt2(tokens)
    # TransformerLens centres the unembedding, which shifts every logit of a position equally.
    centred = lambda x: x - x.mean(-1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(centred(tl_logits), centred(hf_logits), atol=1e-4, rtol=1e-4)


def test_loaded_model_exposes_what_the_pipeline_uses(tiny_gpt2):
    assert tiny_gpt2.W_O.shape == (2, 4, 16, 64)
    _, cache = tiny_gpt2.run_with_cache(torch.tensor([[50256, 15496, 995]]))
    assert cache["blocks.1.attn.hook_z"].shape == (1, 3, 4, 16)
    assert tiny_gpt2.tokenizer.encode(" Mary", add_special_tokens=False) == [5335]


def test_uncached_pretrained_model_fails_fast_with_the_download_command():
    """Run in a fresh interpreter so the measured time includes `import saekit`."""
    code = "import saekit; saekit.load_model('gpt2-small')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": os.environ.get("HF_HOME", "/nonexistent")}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    assert result.returncode != 0
    assert "ModelNotCachedError" in result.stderr
    assert "saekit models --download gpt2-small" in result.stderr
    assert elapsed < 2.0, f"failing to load an uncached model took {elapsed:.1f} s"


def test_uncached_error_names_model_and_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotCachedError, match="attn-only-4l.*NeelNanda/Attn_Only_4L512W_C4_Code"):
        saekit.load_model("attn-only-4l")


def test_unknown_model_name_lists_what_is_known():
    with pytest.raises(ModelNotFoundError, match="Unknown model 'no-such-model'.*gpt2-small"):
        saekit.load_model("no-such-model")


def test_folder_without_a_model_says_how_to_save_one(tmp_path):
    with pytest.raises(ModelNotFoundError, match="save_pretrained"):
        saekit.load_model(tmp_path)


def test_models_command_lists_toy_and_pretrained_models(capsys):
    assert main(["models", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)["models"]}
    assert {"gpt2-small", "attn-only-4l"} <= set(listed)
    assert listed["gpt2-small"]["source"] == "pretrained"
    assert all(row["offline"] for row in listed.values() if row["source"] == "toy")


def test_python_dash_m_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "saekit", "models"], capture_output=True, text=True, check=True
    )
    assert "gpt2-small" in result.stdout


def test_saekit_errors_exit_with_status_2_and_a_message(capsys):
    assert main(["models", "--download", "no-such-model"]) == 2
    assert "Unknown model" in capsys.readouterr().err




class _LoaderCalled(Exception):
    pass


def _record_loader(monkeypatch, name):
    """Replace ``name`` on the model class by a stub that raises with the repository it got."""

    def stub(repo, *args, **kwargs):
        raise _LoaderCalled(name, repo)

    monkeypatch.setattr(_tl._ModelClass, name, stub)


def test_transformerlens_alias_of_an_old_format_repository_reaches_the_loader_that_reads_it(monkeypatch):
    """attn-only-4l (the docstring model) is stored in TransformerLens' own old format."""
    if _tl.TL_MAJOR >= 4:
        import transformer_lens.model_bridge.sources.tl_legacy  # noqa: F401  (registers the loader)

        for loader in ("boot_tl_legacy", "boot_transformers"):
            _record_loader(monkeypatch, loader)
        expected = ("boot_tl_legacy", "NeelNanda/Attn_Only_4L512W_C4_Code")
    else:  # HookedTransformer.from_pretrained resolves its own aliases
        _record_loader(monkeypatch, "from_pretrained")
        expected = ("from_pretrained", "attn-only-4l")
    with pytest.raises(_LoaderCalled) as called:
        _tl.from_pretrained("attn-only-4l", "cpu")
    assert called.value.args == expected


def test_partly_cached_model_fails_with_the_download_command(monkeypatch):
    monkeypatch.setattr("saekit.models._is_cached", lambda repo: True)

    def missing_weights(*args, **kwargs):
        raise OSError("pytorch_model.bin is not in the cache")

    monkeypatch.setattr(_tl, "from_pretrained", missing_weights)
    with pytest.raises(ModelNotCachedError, match="(?s)partly in the local.*saekit models --download gpt2-small"):
        saekit.load_model("gpt2-small")
