"""Shipped toy models: small transformers trained by saekit's own code, with known circuits.

Each model is a folder beside this file holding ``config.json`` (TransformerLens config and how
the model was trained), ``model.safetensors`` (HookedTransformer-format weights),
``tokenizer/`` (a Hugging Face tokenizer folder) and ``ground_truth.json``. They load offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from saekit.errors import ModelError

if TYPE_CHECKING:
    from torch import Tensor

    from saekit._tl import HookedModel

ZOO_DIR = Path(__file__).parent
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
REWRITE_FIX = "Write the folder again (saekit zoo train --out FOLDER, or saekit.zoo.export_model)."


def toy_model_names() -> list[str]:
    """Names of the toy models shipped with this install."""
    return sorted(p.parent.name for p in ZOO_DIR.glob(f"*/{WEIGHTS_FILE}"))


def toy_model_dir(name: str) -> Path:
    """The folder of a shipped toy model."""
    return ZOO_DIR / name


def is_toy_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a toy model in the zoo layout (weights and a ``tokenizer/`` folder)."""
    folder = Path(folder)
    return (folder / WEIGHTS_FILE).is_file() and (folder / TOKENIZER_DIR).is_dir()


def load_toy_model(name: str, device: str = "cpu") -> HookedModel:
    """Load a shipped toy model into TransformerLens (no weight processing: it has none to do)."""
    return load_toy_folder(toy_model_dir(name), device)


def load_toy_folder(folder: str | Path, device: str = "cpu") -> HookedModel:
    """Load a model from a folder in the zoo layout (what ``saekit zoo train --out`` and
    ``saekit zoo export`` write); a missing or damaged file is a :class:`ModelError` naming it."""
    from saekit import _tl
    from saekit._checks import check_finite_weights

    from transformers import AutoTokenizer

    from saekit import _tl
    from saekit._checks import check_finite_weights

    folder = Path(folder)
    tl_config, state_dict = read_toy_weights(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder / TOKENIZER_DIR)
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(
            f"{folder / TOKENIZER_DIR} is not a readable tokenizer folder ({err}). {REWRITE_FIX}"
        ) from None
    model = _tl.build_from_state_dict(tl_config, state_dict, tokenizer, device)
    check_finite_weights(model, str(folder / WEIGHTS_FILE))
    return model


def read_toy_weights(folder: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The TransformerLens config and the state dict in a zoo-layout folder."""
    from saekit._io import read_json, read_safetensors

    folder = Path(folder)
    document = read_json(folder / CONFIG_FILE, ModelError, REWRITE_FIX)
    if not isinstance(document, dict) or not isinstance(document.get("tl_config"), dict):
        raise ModelError(f"{folder / CONFIG_FILE} has no tl_config object (the model's shape). {REWRITE_FIX}")
    return document["tl_config"], read_safetensors(folder / WEIGHTS_FILE, ModelError, REWRITE_FIX)
