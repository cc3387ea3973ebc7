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
    ``saekit zoo export`` write); a missing or damaged file is a `ModelError` naming it."""
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
    from saekit._io import read_safetensors

    return read_zoo_config(folder)["tl_config"], read_safetensors(Path(folder) / WEIGHTS_FILE, ModelError, REWRITE_FIX)


def read_zoo_config(folder: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a zoo-layout folder, its ``tl_config`` (the model's shape) checked."""
    from saekit._io import read_json

    path = Path(folder) / CONFIG_FILE
    document = read_json(path, ModelError, REWRITE_FIX)
    if not isinstance(document, dict) or not isinstance(document.get("tl_config"), dict):
        raise ModelError(f"{path} has no tl_config object (the model's shape). {REWRITE_FIX}")
    return document


#: The TransformerLens config fields a zoo-layout folder records (``tl_config`` in config.json).
EXPORTED_CONFIG_FIELDS = (
    "n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx", "eps",
    "attn_only", "normalization_type", "positional_embedding_type", "act_fn", "default_prepend_bos",
    "original_architecture",
)


def export_model(model: HookedModel, folder: str | Path, description: str = "") -> Path:
    """Write a TransformerLens model and its tokenizer to ``folder`` in the zoo layout.

    The layout (``config.json`` with the model's shape under ``tl_config``, HookedTransformer-
    format ``model.safetensors``, ``tokenizer/``) is what `saekit.load_model` reads, so a
    model built or converted outside saekit loads back with ``load_model(folder)`` on any
    supported TransformerLens version. GPT-2-style models are supported: learned positional
    embeddings, LayerNorm (or folded LayerNorm), plain MLPs or none. The folder is written
    beside and swapped in whole, and only after loading it back gives the model's own logits.
    """
    import torch
    from safetensors.torch import save_file

    from saekit._checks import check_model
    from saekit._io import atomic_folder, dumps_json

    check_model(model, "export_model()")
    if getattr(model, "tokenizer", None) is None:
        raise ModelError("export_model(): the model has no tokenizer; set model.tokenizer first, or pass one when building it.")
    tl_config = _exported_config(model.cfg)
    state_dict = {name: tensor.detach().cpu().contiguous() for name, tensor in _ht_state_dict(model, tl_config).items()}
    folder = Path(folder)
    document = {"name": folder.name, "description": description or "exported with saekit.zoo.export_model", "tl_config": tl_config}
    with atomic_folder(folder) as staging:
        save_file(state_dict, staging / WEIGHTS_FILE)
        model.tokenizer.save_pretrained(staging / TOKENIZER_DIR)
        (staging / CONFIG_FILE).write_text(dumps_json(document))
        probe = (torch.arange(min(8, tl_config["n_ctx"])) % tl_config["d_vocab"])[None]
        with torch.no_grad():
            expected = model(probe.to(model.cfg.device)).float().cpu()
            got = load_toy_folder(staging)(probe).float()
        if not torch.allclose(got, expected, atol=1e-4 * (1 + float(expected.abs().max())), rtol=1e-4):
            raise ModelError(
                "export_model(): the written folder does not reproduce the model's logits, so the "
                "model uses a part this format does not describe. Save a Hugging Face model with "
                "model.save_pretrained(folder) and tokenizer.save_pretrained(folder) instead."
            )
    return folder


def _exported_config(cfg: Any) -> dict[str, Any]:
    """The `EXPORTED_CONFIG_FIELDS` of a model's config; a `ModelError` for a model
    that has parts the format does not describe."""
    unsupported = {
        "positional_embedding_type": getattr(cfg, "positional_embedding_type", "standard") != "standard",
        "normalization_type": getattr(cfg, "normalization_type", "LN") not in ("LN", "LNPre"),
        "gated_mlp": bool(getattr(cfg, "gated_mlp", False)),
        "parallel_attn_mlp": bool(getattr(cfg, "parallel_attn_mlp", False)),
        "n_key_value_heads": getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads),
    }
    if any(unsupported.values()):
        found = {name: getattr(cfg, name, None) for name, bad in unsupported.items() if bad}
        raise ModelError(
            f"export_model() writes GPT-2-style models; this one has {found}. Save a Hugging Face "
            f"model with model.save_pretrained(folder) and tokenizer.save_pretrained(folder) instead."
        )
    values = {name: getattr(cfg, name, None) for name in EXPORTED_CONFIG_FIELDS}
    values["d_vocab_out"] = values["d_vocab_out"] if (values["d_vocab_out"] or -1) > 0 else values["d_vocab"]
    return values


def _ht_state_dict(model: HookedModel, tl_config: dict[str, Any]) -> dict[str, Tensor]:
    """The model's weights under HookedTransformer's parameter names, read through the
    HookedTransformer-style properties both TransformerLens 3.9 and 4 provide."""
    state = {"embed.W_E": model.W_E, "pos_embed.W_pos": model.W_pos, "unembed.W_U": model.W_U, "unembed.b_U": model.b_U}
    with_ln = tl_config["normalization_type"] == "LN"
    norms = ["ln1"] + ([] if tl_config["attn_only"] else ["ln2"])
    for layer in range(tl_config["n_layers"]):
        block = model.blocks[layer]
        for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"):
            state[f"blocks.{layer}.attn.{name}"] = getattr(model, name)[layer]
        if not tl_config["attn_only"]:
            for name in ("W_in", "b_in", "W_out", "b_out"):
                state[f"blocks.{layer}.mlp.{name}"] = getattr(block.mlp, name)
        for norm in norms if with_ln else []:
            state[f"blocks.{layer}.{norm}.w"] = getattr(block, norm).w
            state[f"blocks.{layer}.{norm}.b"] = getattr(block, norm).b
    if with_ln:
        state["ln_final.w"], state["ln_final.b"] = model.ln_final.w, model.ln_final.b
    return state
