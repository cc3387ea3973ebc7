"""Load a model for circuit discovery: a shipped toy model, a TransformerLens name, or a folder.

saekit is offline first. A pretrained model loads only from the local Hugging Face cache unless
``download=True``; a model that is not cached fails at once, before TransformerLens is even
imported, with the command that fetches it on a machine with internet.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``saekit models``: a model name, where it comes from, and whether it loads now."""

    name: str
    source: str  # "toy", "pretrained" or "local"
    offline: bool
    description: str


def download_command(name: str) -> str:
    """The one shell command that fetches ``name`` into the local cache (needs internet)."""
    return f"saekit models --download {name}"


def _is_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def list_models() -> list[ModelInfo]:
    """The shipped toy models and the paper's pretrained models, with offline availability."""
    from saekit.zoo import toy_model_dir

    infos = []
    for name in toy_model_names():
        card = toy_model_dir(name) / "config.json"
        infos.append(ModelInfo(name, "toy", True, _toy_description(card)))
    for name, (repo, description) in PRETRAINED_MODELS.items():
        infos.append(ModelInfo(name, "pretrained", _is_cached(repo), description))
    return infos


def _toy_description(config_path: Path) -> str:
    import json

    return json.loads(config_path.read_text()).get("description", "shipped toy model")


def load_model(name: str | os.PathLike, device: str = "cpu", download: bool = False) -> HookedModel:
    """Load a TransformerLens model by name, ready for hooks.

    ``name`` is one of:
    - a shipped toy model (``"toy-4l"``): offline, no processing needed;
    - one of :data:`PRETRAINED_MODELS` (``"gpt2-small"``, ``"attn-only-4l"``) or a hub
      repository id (``"EleutherAI/pythia-160m"``): loaded with TransformerLens' usual weight
      processing, from the local cache only unless ``download`` (which also accepts
      TransformerLens' other aliases);
    - a local folder in the zoo layout (what ``saekit zoo train --out`` and
      :func:`saekit.zoo.export_model` write);
    - a local folder holding a Hugging Face causal LM and its tokenizer.

    Raises :class:`ModelNotCachedError` at once for a pretrained model that is not cached,
    :class:`ModelNotFoundError` for a name that is none of the above, a :class:`SaekitError`
    for a device this machine lacks (before anything loads), and :class:`ModelError` for
    damaged files, NaN weights, a tokenizer larger than the vocabulary or a non-causal model.
    """
    check_device(device)
    model = _load_model(str(name), device, download)
    check_model(model, f"load_model({str(name)!r})")
    return model


def _load_model(name: str, device: str, download: bool) -> HookedModel:
    """:func:`load_model` before its checks of the loaded model."""
    if name in toy_model_names():
        from saekit.zoo import load_toy_model

        return load_toy_model(name, device)
    if Path(name).is_dir():
        from saekit.zoo import is_toy_folder, load_toy_folder

        if is_toy_folder(name):
            return load_toy_folder(name, device)
        return _load_local_folder(Path(name), device)
    repo = _pretrained_repo(name, download)
    if not download and not _is_cached(repo):
        raise ModelNotCachedError(
            f"Model {name!r} (hub repository {repo!r}) is not in the local Hugging Face cache, "
            f"and saekit does not download unless asked. On a machine with internet run:\n"
            f"    {download_command(name)}\n"
            f"or call load_model({name!r}, download=True). Offline, use a shipped toy model "
            f"({', '.join(toy_model_names()) or 'none installed'}) or a local folder."
        )
    from saekit import _tl

    try:
        return _tl.from_pretrained(name, device)
    except OSError as err:  # the config is cached, some weights file is not
        if download:
            raise ModelNotCachedError(
                f"Could not download model {name!r} (hub repository {repo!r}): {err} Check the "
                f"internet connection, and that HF_HUB_OFFLINE is not set."
            ) from None
        raise ModelNotCachedError(
            f"Model {name!r} (hub repository {repo!r}) is only partly in the local Hugging Face "
            f"cache ({err}). On a machine with internet run:\n    {download_command(name)}"
        ) from err


def _pretrained_repo(name: str, download: bool = False) -> str:
    """The hub repository of a pretrained name, without importing TransformerLens.

    Known names, cached repositories and ``owner/repo`` ids resolve at once and anything else is
    refused at once; only ``download=True``, which imports TransformerLens anyway, asks it to
    resolve its other aliases.
    """
    if name in PRETRAINED_MODELS:
        return PRETRAINED_MODELS[name][0]
    if "/" in name:
        if not _is_repo_id(name):
            raise ModelNotFoundError(
                f"There is no folder {name!r}, and it is not a hub repository id (owner/name) "
                f"either. Check the path; a model folder holds config.json and the weights."
            )
        return name
    if _is_repo_id(name) and _is_cached(name):
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
