"""Load a model for circuit discovery: a shipped toy model, a TransformerLens name, or a folder.

saekit is offline first. A pretrained model loads only from the local Hugging Face cache unless
``download=True``: its files are read straight from the cache's snapshot folder, with no call to
the network, so a cached model loads in seconds with or without ``HF_HUB_OFFLINE``. A model that
is not cached, or only partly, fails at once, before TransformerLens is even imported, with the
command that fetches it on a machine with internet.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saekit._checks import check_device, check_model
from saekit.errors import ModelError, ModelNotCachedError, ModelNotFoundError
from saekit.zoo import toy_model_names

if TYPE_CHECKING:
    from saekit._tl import HookedModel

#: The paper's models and their relatives, by TransformerLens name, with their hub repository.
#: These are listed by ``saekit models`` and resolved without importing TransformerLens, so a
#: missing one fails in well under a second; any other model goes by its hub repository id.
PRETRAINED_MODELS: dict[str, tuple[str, str]] = {
    "gpt2-small": ("gpt2", "GPT-2 small (124M): the paper's IOI and greater-than model"),
    "gpt2-medium": ("gpt2-medium", "GPT-2 medium (355M)"),
    "gpt2-xl": ("gpt2-xl", "GPT-2 XL (1.5B): the paper's scaling run"),
    "attn-only-2l": ("NeelNanda/Attn_Only_2L512W_C4_Code", "2-layer attention-only"),
    "attn-only-4l": ("NeelNanda/Attn_Only_4L512W_C4_Code", "the paper's docstring model"),
    "pythia-70m": ("EleutherAI/pythia-70m", "Pythia 70M"),
}

#: Every other name of the models above, mapped to the name saekit uses for them (and keys its
#: ground truths by): their hub repositories, TransformerLens' aliases (the same table in 3.9 and
#: 4; a test keeps this one complete) and the hub's newer ids. Matched case-insensitively.
MODEL_ALIASES: dict[str, str] = {
    **{repo: name for name, (repo, _) in PRETRAINED_MODELS.items()},
    "openai-community/gpt2": "gpt2-small",
    "openai-community/gpt2-medium": "gpt2-medium",
    "openai-community/gpt2-xl": "gpt2-xl",
    "attn-only-2l-new": "attn-only-2l",
    "attn-only-2l-c4-code": "attn-only-2l",
    "attn-only-4l-new": "attn-only-4l",
    "attn-only-4l-c4-code": "attn-only-4l",
    "pythia": "pythia-70m",
    "pythia-19m": "pythia-70m",
    "EleutherAI/pythia-19m": "pythia-70m",
}

_BY_LOWER_NAME: dict[str, str] = {
    **{alias.lower(): name for alias, name in MODEL_ALIASES.items()},
    **{name.lower(): name for name in PRETRAINED_MODELS},
}


def canonical_model_name(name: str | os.PathLike) -> str:
    """saekit's name for a model: any alias of a listed pretrained model (``"gpt2"``,
    ``"openai-community/gpt2"``, ``"GPT2-Small"``) gives its ``PRETRAINED_MODELS`` name
    (``"gpt2-small"``); toy models, folders and other names come back unchanged."""
    name = str(name)
    return _BY_LOWER_NAME.get(name.lower(), name)


def aliases_of(name: str) -> list[str]:
    """The other names of a listed pretrained model (empty for any other model)."""
    name = canonical_model_name(name)
    return [alias for alias, target in MODEL_ALIASES.items() if target == name]


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``saekit models``: a model name, where it comes from, and whether it loads now."""

    name: str
    source: str  # "toy", "pretrained" or "local"
    offline: bool
    description: str
    aliases: tuple[str, ...] = ()


def download_command(name: str) -> str:
    """The one shell command that fetches ``name`` into the local cache (needs internet)."""
    return f"saekit models --download {name}"


# --------------------------------------------------------------------------------------------
# The local Hugging Face cache
# --------------------------------------------------------------------------------------------

#: Weight files of a Hugging Face model, in the order transformers prefers them.
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_HF_TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "vocab.json")


@dataclass(frozen=True)
class CachedModel:
    """A pretrained model's files in the local Hugging Face cache: everything a load reads."""

    repo: str
    folder: Path
    """The snapshot folder holding the repository's files, as a download leaves it."""
    config: dict[str, Any]
    tokenizer_folder: Path | None

    @property
    def legacy(self) -> bool:
        """TransformerLens' own old format (a TransformerLens config and ``*final.pth`` weights),
        which the paper's attention-only models use; Hugging Face configs name a ``model_type``."""
        return "model_type" not in self.config

    @property
    def legacy_weights(self) -> Path:
        """The final checkpoint of a legacy repository (TransformerLens reads ``*final.pth``)."""
        return _legacy_weight_files(self.folder)[0]


def _snapshot(repo: str, filename: str) -> Path | None:
    """The cached snapshot folder of ``repo`` if it holds ``filename``; no network call."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo, filename)
    return Path(path).parent if isinstance(path, str) else None


def _legacy_weight_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*final.pth") if path.is_file())


def _hf_weights_present(folder: Path) -> bool:
    for name in _HF_WEIGHTS:
        if not (folder / name).is_file():
            continue
        if not name.endswith(".index.json"):
            return True
        shards = set(json.loads((folder / name).read_text())["weight_map"].values())
        return all((folder / shard).is_file() for shard in shards)
    return False


def find_cached(name: str) -> CachedModel:
    """Where pretrained model ``name`` (any alias) lies in the local cache, checked complete.

    Reads only the cache folder (no TransformerLens, no network). Raises
    `ModelNotCachedError` naming what is missing and the command that fetches it.
    """
    repos = _hub_repos(name)
    found = next(((repo, folder) for repo in repos if (folder := _snapshot(repo, "config.json"))), None)
    if found is None:
        raise ModelNotCachedError(
            f"Model {name!r} (hub repository {repos[0]!r}) is not in the local Hugging Face cache, "
            f"and saekit does not download unless asked. On a machine with internet run:\n"
            f"    {download_command(name)}\n"
            f"or call load_model({name!r}, download=True). Offline, use a shipped toy model "
            f"({', '.join(toy_model_names()) or 'none installed'}) or a local folder."
        )
    repo, folder = found
    config = json.loads((folder / "config.json").read_text())
    missing, tokenizer_folder = [], folder
    if "model_type" not in config:  # TransformerLens' own format: weights, tokenizer elsewhere
        if not _legacy_weight_files(folder):
            missing.append("its weights (*final.pth)")
        tokenizer_repo = config.get("tokenizer_name")
        tokenizer_folder = None
        if tokenizer_repo:
            tokenizer_folder = next(filter(None, (_snapshot(tokenizer_repo, f) for f in _HF_TOKENIZER)), None)
            if tokenizer_folder is None:
                missing.append(f"its tokenizer (hub repository {tokenizer_repo!r})")
    else:
        if not _hf_weights_present(folder):
            missing.append(f"its weights ({' or '.join(_HF_WEIGHTS[::2])})")
        if not any((folder / f).is_file() for f in _HF_TOKENIZER):
            missing.append("its tokenizer")
    if missing:
        raise ModelNotCachedError(
            f"Model {name!r} (hub repository {repo!r}) is only partly in the local Hugging Face "
            f"cache: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing from "
            f"{folder}. On a machine with internet run:\n    {download_command(name)}"
        )
    return CachedModel(repo, folder, config, tokenizer_folder)


def _hub_repos(name: str, download: bool = False) -> list[str]:
    """The hub repositories that may hold ``name``: a listed model's repository and its hub ids
    (the name given first), or the repository TransformerLens resolves any other name to."""
    canonical = canonical_model_name(name)
    if canonical not in PRETRAINED_MODELS:
        return [_pretrained_repo(name, download)]
    ids = [PRETRAINED_MODELS[canonical][0], *(a for a in aliases_of(canonical) if "/" in a)]
    return sorted(dict.fromkeys(ids), key=lambda repo: repo.lower() != name.lower())


def _is_offline(name: str) -> bool:
    try:
        find_cached(name)
    except ModelNotCachedError:
        return False
    return True


def list_models() -> list[ModelInfo]:
    """The shipped toy models and the paper's pretrained models, with offline availability."""
    from saekit.zoo import toy_model_dir

    infos = []
    for name in toy_model_names():
        card = toy_model_dir(name) / "config.json"
        infos.append(ModelInfo(name, "toy", True, _toy_description(card)))
    for name, (_, description) in PRETRAINED_MODELS.items():
        infos.append(ModelInfo(name, "pretrained", _is_offline(name), description, tuple(aliases_of(name))))
    return infos


def _toy_description(config_path: Path) -> str:
    return json.loads(config_path.read_text()).get("description", "shipped toy model")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_model(name: str | os.PathLike, device: str = "cpu", download: bool = False) -> HookedModel:
    """Load a TransformerLens model by name, ready for hooks.

    ``name`` is one of:
    - a shipped toy model (``"toy-4l"``): offline, no processing needed;
    - a TransformerLens or Hugging Face name (``"gpt2-small"``, ``"attn-only-4l"``, or any alias
      such as ``"gpt2"``) or a hub repository id (``"EleutherAI/pythia-160m"``): loaded with
      TransformerLens' usual weight processing, from the local cache only (no network call)
      unless ``download``;
    - a local folder in the zoo layout (what ``saekit zoo train --out`` and
      `saekit.zoo.export_model` write);
    - a local folder holding a Hugging Face causal LM and its tokenizer.

    Raises `ModelNotCachedError` at once for a pretrained model that is not cached, or only
    partly, `ModelNotFoundError` for a name that is none of the above, a `SaekitError` for a
    device this machine lacks (before anything loads), and `ModelError` for damaged files, NaN
    weights, a tokenizer larger than the vocabulary or a non-causal model.
    """
    check_device(device)
    model = _load_model(str(name), device, download)
    check_model(model, f"load_model({str(name)!r})")
    return model


def _load_model(name: str, device: str, download: bool) -> HookedModel:
    """`load_model` before its checks of the loaded model."""
    if name in toy_model_names():
        from saekit.zoo import load_toy_model

        return load_toy_model(name, device)
    if Path(name).is_dir():
        from saekit.zoo import is_toy_folder, load_toy_folder

        if is_toy_folder(name):
            return load_toy_folder(name, device)
        return _load_local_folder(Path(name), device)
    if download:
        from saekit import _tl

        repo = _hub_repos(name, download=True)[0]
        try:  # TransformerLens fetches what it reads; the hub's own name keeps it from warning about the alias
            return _tl.from_pretrained(repo, device)
        except OSError as err:
            raise ModelNotCachedError(
                f"Could not download model {name!r} (hub repository {repo!r}): {err} Check the "
                f"internet connection, and that HF_HUB_OFFLINE is not set."
            ) from None
    return _load_cached(find_cached(name), device)


def _load_cached(cached: CachedModel, device: str) -> HookedModel:
    """A pretrained model built from its cached files alone (no hub call, offline or not)."""
    if not cached.legacy:
        return _load_local_folder(cached.folder, device)
    import torch
    from transformers import AutoTokenizer

    from saekit import _tl

    config = _tl.legacy_config(cached.repo, cached.config)
    state_dict = torch.load(cached.legacy_weights, map_location="cpu", weights_only=True)
    tokenizer = None if cached.tokenizer_folder is None else AutoTokenizer.from_pretrained(cached.tokenizer_folder)
    return _tl.build_from_state_dict(config, state_dict, tokenizer, device, process=True, name=cached.repo)


def _pretrained_repo(name: str, download: bool = False) -> str:
    """The hub repository of a pretrained name, without importing TransformerLens.

    Known names (any alias), cached repositories and ``owner/repo`` ids resolve at once and
    anything else is refused at once; only ``download=True``, which imports TransformerLens
    anyway, asks it to resolve its other aliases.
    """
    canonical = canonical_model_name(name)
    if canonical in PRETRAINED_MODELS:
        return PRETRAINED_MODELS[canonical][0]
    if "/" in name:
        if not _is_repo_id(name):
            raise ModelNotFoundError(
                f"There is no folder {name!r}, and it is not a hub repository id (owner/name) "
                f"either. Check the path; a model folder holds config.json and the weights."
            )
        return name
    if _is_repo_id(name) and _snapshot(name, "config.json") is not None:
        return name
    if download:
        from saekit import _tl

        with contextlib.suppress(ValueError):
            return _tl.official_name(name)
    known = ", ".join([*toy_model_names(), *PRETRAINED_MODELS])
    raise ModelNotFoundError(
        f"Unknown model {name!r}: not a shipped toy model, not a local folder, not one of "
        f"saekit's pretrained names and not in the local cache. Known here: {known}. For another "
        f"TransformerLens model give its hub repository (owner/name), or fetch it with "
        f"`{download_command(name)}`. Run `saekit models` for the list."
    )


def _is_repo_id(name: str) -> bool:
    """Whether ``name`` could be a hub repository id (a mistyped folder path, often, cannot)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _load_local_folder(folder: Path, device: str) -> HookedModel:
    """A Hugging Face causal LM saved with ``save_pretrained`` (model and tokenizer) in a folder."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from saekit import _tl
    from saekit._io import read_json

    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"Folder {str(folder)!r} has no config.json. Save a model there with "
            f"model.save_pretrained(folder) and tokenizer.save_pretrained(folder), or a "
            f"TransformerLens model with saekit.zoo.export_model(model, folder)."
        )
    read_json(folder / "config.json", ModelError, "Save the model again with model.save_pretrained(folder).")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(
            f"Folder {str(folder)!r} holds no tokenizer ({err}). Save one beside the model with "
            f"tokenizer.save_pretrained(folder)."
        ) from None
    if len(tokenizer) < 2:  # transformers makes an empty tokenizer when the files are missing
        raise ModelNotFoundError(
            f"Folder {str(folder)!r} holds no tokenizer files (vocabulary), so prompts cannot be "
            f"tokenized. Save one beside the model with tokenizer.save_pretrained(folder)."
        )
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise ModelError(
            f"The weights in {str(folder)!r} are missing, damaged or do not fit its config.json "
            f"({type(err).__name__}: {err}). Save the model again with model.save_pretrained(folder)."
        ) from None
    return _tl.from_pretrained(str(folder), device, hf_model=hf_model, tokenizer=tokenizer)
