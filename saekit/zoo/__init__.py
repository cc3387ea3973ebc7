"""Shipped toy models: small transformers trained by saekit's own code, with known circuits.

Each model is a folder beside this file holding ``config.json`` (TransformerLens config and how
the model was trained), ``model.safetensors`` (HookedTransformer-format weights),
``tokenizer/`` (a Hugging Face tokenizer folder) and ``ground_truth.json``. They load offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from saekit._tl import HookedModel

ZOO_DIR = Path(__file__).parent


def toy_model_names() -> list[str]:
    """Names of the toy models shipped with this install."""
    return sorted(p.parent.name for p in ZOO_DIR.glob("*/model.safetensors"))


def toy_model_dir(name: str) -> Path:
    """The folder of a shipped toy model."""
    return ZOO_DIR / name


def is_toy_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a toy model in the zoo layout (weights and a ``tokenizer/`` folder)."""
    folder = Path(folder)
    return (folder / "model.safetensors").is_file() and (folder / "tokenizer").is_dir()


def load_toy_model(name: str, device: str = "cpu") -> HookedModel:
    """Load a shipped toy model into TransformerLens (no weight processing: it has none to do)."""
    return load_toy_folder(toy_model_dir(name), device)


def load_toy_folder(folder: str | Path, device: str = "cpu") -> HookedModel:
    """Load a toy model from a folder in the zoo layout (what ``saekit zoo train --out`` writes)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from saekit import _tl

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    state_dict = load_file(folder / "model.safetensors")
    return _tl.build_from_state_dict(config["tl_config"], state_dict, tokenizer, device)
