"""The one place saekit speaks to a specific TransformerLens version.

TransformerLens 4 replaced ``HookedTransformer`` with ``TransformerBridge``; 3.9 is the last
release with ``HookedTransformer`` and the one sae-lens 6 needs. Both expose the hook names
(``blocks.L.attn.hook_z``), ``W_O``, ``cfg``, ``tokenizer``, ``hooks()``, ``run_with_hooks`` and
``run_with_cache`` that saekit uses, so only construction and loading differ. Nothing outside
this module branches on the version.
"""

from __future__ import annotations

import contextlib
import sys
from importlib.metadata import version
from typing import Any, Union

import torch

from saekit.errors import ModelNotFoundError

TL_VERSION: str = version("transformer-lens")
TL_MAJOR: int = int(TL_VERSION.split(".")[0])

if TL_MAJOR >= 4:
    from transformer_lens.model_bridge import TransformerBridge as _ModelClass
else:  # pragma: no cover - exercised by the TransformerLens 3.9 CI environment
    from transformer_lens import HookedTransformer as _ModelClass

#: The model type saekit works with under the installed TransformerLens.
HookedModel = Union[_ModelClass]


def build_from_state_dict(
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    tokenizer: Any,
    device: str,
    process: bool = False,
    name: str = "native",
) -> HookedModel:
    """A TransformerLens model from a config and a HookedTransformer-format state dict.

    ``config`` holds HookedTransformerConfig fields (``n_layers``, ``d_model``, ``attn_only``,
    ...) and ``state_dict`` uses HookedTransformer parameter names (``blocks.0.attn.W_Q``, ...),
    the format TransformerLens has always saved. Weights are loaded as they are, unless
    ``process``: then with the processing TransformerLens gives a pretrained model (fold the
    layer norms, centre the writing weights and the unembedding, fold the value biases).
    """
    # Saved HookedTransformer state dicts may carry the attention-mask buffers, which the model
    # builds itself; pretrained checkpoints often lack the unembedding bias, which TransformerLens
    # reads as zeros. A checkpoint saekit wrote lacks nothing: a missing tensor is damage.
    state_dict = {key: value for key, value in state_dict.items() if key.rsplit(".", 1)[-1] not in _BUFFERS}
    if process:
        state_dict.setdefault("unembed.b_U", torch.zeros(config.get("d_vocab_out") or config["d_vocab"]))
    if TL_MAJOR >= 4:
        import transformer_lens.model_bridge.sources.native  # noqa: F401  (registers boot_native)
        from transformer_lens.config import TransformerBridgeConfig
        from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

        bridge_config = TransformerBridgeConfig.from_dict(dict(config))
        model = _ModelClass.boot_native(bridge_config, tokenizer=tokenizer, device=device, model_name=name)
        try:
            model.load_state_dict(convert_tl_checkpoint(state_dict, bridge_config), strict=True)
        except RuntimeError as err:
            raise _weights_do_not_fit(str(err)) from None
        if process:
            model.enable_compatibility_mode()
    else:  # pragma: no cover - TransformerLens 3.9
        from transformer_lens import HookedTransformerConfig

        if process and config.get("normalization_type") == "LN":
            config = {**config, "normalization_type": "LNPre"}  # as from_pretrained folds it
        model = _ModelClass(HookedTransformerConfig(**config, model_name=name), tokenizer=tokenizer)
        expected = [key for key in model.state_dict() if key.rsplit(".", 1)[-1] not in _BUFFERS]
        missing = [key for key in expected if key not in state_dict]
        unexpected = [] if process else [key for key in state_dict if key not in expected]
        if missing or unexpected:
            raise _weights_do_not_fit(f"missing {missing}, unexpected {unexpected}")
        if process:
            model.load_and_process_state_dict(
                state_dict, fold_ln=True, center_writing_weights=True, center_unembed=True,
                fold_value_biases=True,
            )
        else:
            model.load_state_dict(state_dict, strict=False)
        model.to(device, print_details=False)
    return model.eval()


#: Buffers a HookedTransformer builds itself (causal mask, its fill value).
_BUFFERS = ("IGNORE", "mask")


def legacy_config(repo: str, config_json: dict[str, Any]) -> dict[str, Any]:
    """HookedTransformerConfig fields of a repository in TransformerLens' old format.

    Such repositories (``NeelNanda/Attn_Only_4L512W_C4_Code`` and its relatives) ship the
    training config as ``config.json`` and HookedTransformer weights as ``*final.pth``. The fields
    are read as TransformerLens reads them; the older layouts it converts (SoLU ``*_old``,
    minGPT, shortformer positions) are refused.
    """
    architecture = config_json.get("architecture", "neel")
    if architecture != "neel" or repo.endswith("_old") or config_json.get("shortformer_pos"):
        raise ModelNotFoundError(
            f"{repo!r} is stored in an older TransformerLens layout ({architecture}, shortformer "
            f"positions or *_old weights) that saekit does not read; load it with TransformerLens "
            f"and pass the model to saekit's functions."
        )
    fields = ("d_model", "n_layers", "d_mlp", "d_head", "n_heads", "n_ctx", "d_vocab", "act_fn", "attn_only")
    missing = [field for field in fields if field not in config_json]
    if missing:
        raise ModelNotFoundError(
            f"The cached config.json of {repo!r} lacks {', '.join(missing)}: it is not a "
            f"TransformerLens checkpoint config, or it is damaged; download it again."
        )
    return {
        **{field: config_json[field] for field in fields},
        "final_rms": config_json.get("final_rms", False),
        "normalization_type": config_json.get("normalization", config_json.get("normalization_type")),
        "positional_embedding_type": "standard",
        "tokenizer_name": config_json.get("tokenizer_name"),
        "original_architecture": architecture,
    }


def _weights_do_not_fit(detail: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"The weights do not fit the model's config ({detail}); the folder's files come from "
        f"different models. Save the model again (saekit zoo train --out FOLDER)."
    )


def from_pretrained(
    tl_name: str, device: str, hf_model: Any = None, tokenizer: Any = None
) -> HookedModel:
    """A pretrained model with TransformerLens' usual weight processing (fold LN, centre).

    ``tl_name`` is a TransformerLens or Hugging Face model name. With ``hf_model`` and
    ``tokenizer`` given, nothing is read from the hub: the weights come from those objects.
    """
    if TL_MAJOR >= 4:
        # Repositories in TransformerLens' own old format (attn-only-4l is one) have a loader of
        # their own: boot_transformers would hand them to AutoConfig, which refuses them.
        from transformer_lens.model_bridge.sources.tl_legacy import TL_LEGACY_PREFIXES

        repo = tl_name if hf_model is not None else _official_or_same(tl_name)
        if hf_model is None and repo.startswith(TL_LEGACY_PREFIXES):
            model = _ModelClass.boot_tl_legacy(repo, device=device, tokenizer=tokenizer)
        else:
            model = _ModelClass.boot_transformers(
                tl_name, device=device, hf_model=hf_model, tokenizer=tokenizer
            )
        model.enable_compatibility_mode()
    elif hf_model is None:  # pragma: no cover - TransformerLens 3.9
        # 3.9 announces the load on stdout, where a command's --json result must stand alone.
        with contextlib.redirect_stdout(sys.stderr):
            model = _ModelClass.from_pretrained(tl_name, device=device, tokenizer=tokenizer)
    else:  # pragma: no cover - TransformerLens 3.9
        # from_pretrained refuses names outside its list (local folders); its own config and
        # state-dict helpers accept them, so build the model the way from_pretrained does.
        from transformer_lens import loading_from_pretrained as loading

        config = loading.get_pretrained_model_config(tl_name, fold_ln=True, device=device)
        state_dict = loading.get_pretrained_state_dict(tl_name, config, hf_model)
        model = _ModelClass(config, tokenizer=tokenizer)
        model.load_and_process_state_dict(
            state_dict, fold_ln=True, center_writing_weights=True, center_unembed=True,
            fold_value_biases=True,
        )
        model.to(device, print_details=False)
    return model.eval()


def _official_or_same(tl_name: str) -> str:
    """The hub repository behind a TransformerLens alias; any other name as it is."""
    try:
        return official_name(tl_name)
    except ValueError:
        return tl_name


def official_name(tl_name: str) -> str:
    """The Hugging Face repository behind a TransformerLens model name or alias."""
    if TL_MAJOR >= 4:
        from transformer_lens.supported_models import get_official_model_name
    else:  # pragma: no cover - TransformerLens 3.9
        from transformer_lens.loading_from_pretrained import get_official_model_name
    return get_official_model_name(tl_name)
