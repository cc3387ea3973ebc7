"""Model loading: local Hugging Face folders, offline failures, the ``saekit models`` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

import saekit
from saekit import ModelNotCachedError, ModelNotFoundError, _tl
from saekit.cli import main
from saekit.models import PRETRAINED_MODELS, canonical_model_name
from saekit.tasks.ground_truth import ground_truth_heads
from saekit.testing import add_to_hub_cache, save_random_legacy_checkpoint


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


# --------------------------------------------------------------------------------------------
# Loading from a complete local cache, with no network call
# --------------------------------------------------------------------------------------------

LEGACY_REPO = "NeelNanda/Attn_Only_4L512W_C4_Code"
LEGACY_TOKENIZER_REPO = "NeelNanda/gpt-neox-tokenizer-digits"


@pytest.fixture(scope="session")
def legacy_dir(tmp_path_factory):
    """A random attention-only model in TransformerLens' old format (what attn-only-4l ships)."""
    return save_random_legacy_checkpoint(tmp_path_factory.mktemp("legacy"), 50257, LEGACY_TOKENIZER_REPO)


def _hub_cache(root, tiny_gpt2_dir, legacy_dir, gpt2_tokenizer_dir, leave_out=()):
    """A hub cache holding gpt2-small, attn-only-4l and its tokenizer, minus ``leave_out``
    (files by name, or whole repositories)."""
    hub = root / "hub"
    for repo, folder in [("gpt2", tiny_gpt2_dir), (LEGACY_REPO, legacy_dir), (LEGACY_TOKENIZER_REPO, gpt2_tokenizer_dir)]:
        if repo in leave_out:
            continue
        kept = root / "sources" / repo
        shutil.copytree(folder, kept, ignore=lambda _, names: [n for n in names if n in leave_out])
        add_to_hub_cache(hub, repo, kept)
    return hub


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory, tiny_gpt2_dir, legacy_dir, gpt2_tokenizer_dir):
    root = tmp_path_factory.mktemp("hf-home")
    _hub_cache(root, tiny_gpt2_dir, legacy_dir, gpt2_tokenizer_dir)
    return root


_LOAD_WITHOUT_NETWORK = """
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:1]))
    raise OSError("no network in this test")
socket.getaddrinfo = refuse
socket.socket.connect = refuse
import torch, saekit
from saekit.models import find_cached
from saekit.zoo.model import AttnOnlyTransformer, ToyModelConfig
tokens = torch.tensor([[50256, 15496, 995, 11, 318, 257]])
centred = lambda x: x - x.mean(-1, keepdim=True)
gaps = {}
with torch.no_grad():
    for name in ["gpt2-small", "gpt2", "openai-community/gpt2"]:
        from transformers import GPT2LMHeadModel
        reference = GPT2LMHeadModel.from_pretrained(find_cached(name).folder).eval()
        gaps[name] = float((centred(saekit.load_model(name)(tokens)) - centred(reference(tokens).logits)).abs().max())
    cached = find_cached("attn-only-4l")
    state = torch.load(cached.legacy_weights, weights_only=True)
    reference = AttnOnlyTransformer(ToyModelConfig(d_vocab=50257, n_layers=2, n_heads=4, d_model=32, d_head=8))
    reference.load_state_dict({k: v for k, v in state.items() if not k.endswith(("mask", "IGNORE"))})
    model = saekit.load_model("attn-only-4l")
    gaps["attn-only-4l"] = float((centred(model(tokens)) - centred(reference(tokens))).abs().max())
    # Processed as TransformerLens processes a pretrained model: value biases folded into b_O.
    gaps["attn-only-4l b_V"] = float(model.b_V.abs().max())
print(json.dumps({"gaps": gaps, "attempts": attempts}))
"""


@pytest.mark.parametrize("hub_offline", ["1", ""], ids=["HF_HUB_OFFLINE=1", "HF_HUB_OFFLINE unset"])
def test_complete_cache_loads_every_alias_without_any_network_call(hf_home, hub_offline):
    """gpt2-small (Hugging Face format) and attn-only-4l (TransformerLens' old format, tokenizer
    in a second repository) built from the cached files alone, matching the weights' own model."""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": hub_offline, "TQDM_DISABLE": "1"}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_NETWORK], capture_output=True,
                            text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert set(report["gaps"]) == {"gpt2-small", "gpt2", "openai-community/gpt2", "attn-only-4l", "attn-only-4l b_V"}
    assert all(gap < 1e-4 for gap in report["gaps"].values()), report["gaps"]
    assert "DEPRECATED" not in result.stderr  # TransformerLens' advice to rename gpt2-small


@pytest.fixture
def hub_cache_at(monkeypatch):
    """Point huggingface_hub at a cache folder for the rest of the test."""
    import huggingface_hub.constants as hub_constants

    def point(hub):
        monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub))

    return point


@pytest.mark.parametrize(
    ("leave_out", "name", "words"),
    [
        (("model_final.pth",), "attn-only-4l", r"weights \(\*final\.pth\)"),
        ((LEGACY_TOKENIZER_REPO,), "attn-only-4l", "tokenizer.*NeelNanda/gpt-neox-tokenizer-digits"),
        (("model.safetensors",), "gpt2-small", "weights"),
        (("tokenizer.json", "tokenizer_config.json", "vocab.json"), "gpt2", "tokenizer"),
    ],
)
def test_partly_cached_model_names_what_is_missing_and_the_download_command(
    hub_cache_at, tmp_path, tiny_gpt2_dir, legacy_dir, gpt2_tokenizer_dir, leave_out, name, words
):
    hub_cache_at(_hub_cache(tmp_path, tiny_gpt2_dir, legacy_dir, gpt2_tokenizer_dir, leave_out))
    with pytest.raises(ModelNotCachedError, match=f"(?s)partly in the local.*{words}.*saekit models --download {name}"):
        saekit.load_model(name)
    assert {info.name: info.offline for info in saekit.list_models()}[canonical_model_name(name)] is False


def test_models_lists_a_completely_cached_model_as_offline(hub_cache_at, hf_home):
    hub_cache_at(hf_home / "hub")
    offline = {info.name: info.offline for info in saekit.list_models()}
    assert offline["gpt2-small"] and offline["attn-only-4l"]
    assert not offline["gpt2-medium"]


def test_download_hands_transformerlens_the_hub_name_not_an_alias(monkeypatch):
    """TransformerLens 4 warns on its deprecated aliases; the hub name avoids the warning."""
    asked = []

    class Asked(Exception):
        """Raised by the stub loader once it has recorded the name it was given."""

    def record(name, device):
        asked.append(name)
        raise Asked

    monkeypatch.setattr(_tl, "from_pretrained", record)
    for name in ("gpt2-small", "attn-only-4l"):
        with pytest.raises(Asked):
            saekit.load_model(name, download=True)
    assert asked == ["gpt2", LEGACY_REPO]


# --------------------------------------------------------------------------------------------
# One name per model
# --------------------------------------------------------------------------------------------


def _transformerlens_aliases() -> dict[str, list[str]]:
    if _tl.TL_MAJOR >= 4:
        from transformer_lens.supported_models import MODEL_ALIASES
    else:
        from transformer_lens.loading_from_pretrained import MODEL_ALIASES
    return MODEL_ALIASES


@pytest.mark.parametrize("name", list(PRETRAINED_MODELS))
def test_every_transformerlens_alias_of_a_listed_model_resolves_to_saekits_name(name):
    repo = PRETRAINED_MODELS[name][0]
    for alias in [repo, *_transformerlens_aliases().get(repo, [])]:
        assert canonical_model_name(alias) == name
        assert canonical_model_name(alias.upper()) == name


@pytest.mark.parametrize(
    ("alias", "task", "size"),
    [("gpt2", "ioi", 26), ("openai-community/gpt2", "ioi", 26), ("GPT2-Small", "greater-than", 9),
     ("NeelNanda/Attn_Only_4L512W_C4_Code", "docstring", 6), ("attn-only-4l-new", "docstring", 6)],
)
def test_ground_truth_answers_for_every_alias(alias, task, size):
    heads = ground_truth_heads(alias, task)
    assert heads == ground_truth_heads(canonical_model_name(alias), task)
    assert len(heads) == size


def test_other_names_pass_through_unchanged():
    assert canonical_model_name("toy-4l") == "toy-4l"
    assert canonical_model_name("gpt2-large") == "gpt2-large"


def test_a_damaged_legacy_config_is_a_saekit_error():
    with pytest.raises(ModelNotFoundError, match="lacks act_fn.*download it again"):
        _tl.legacy_config(LEGACY_REPO, {"d_model": 8, "n_layers": 1, "d_mlp": 32, "d_head": 4, "n_heads": 2,
                                        "n_ctx": 16, "d_vocab": 10, "attn_only": True})
    with pytest.raises(ModelNotFoundError, match="older TransformerLens layout"):
        _tl.legacy_config("NeelNanda/SoLU_1L_v9_old", {})
