"""Save and load SAEs in the folder layout sae-lens reads.

A folder holds ``cfg.json`` (sae-lens 6 fields: ``architecture``, ``d_in``, ``d_sae``, ``dtype``,
``apply_b_dec_to_input`` ...; saekit's own [`SAEConfig`][saekit.sae.SAEConfig] under
``metadata.saekit_config``) and ``sae_weights.safetensors`` (``W_enc`` [d_in, d_sae], ``b_enc``,
``W_dec`` [d_sae, d_in], ``b_dec``, plus ``threshold`` for the JumpReLU-format architectures).
``sae_lens.SAE.load_from_disk(folder)`` then encodes exactly like saekit, for every architecture
with an sae-lens equivalent (all but ``top_afa``, whose per-input number of active latents
sae-lens has no activation for; its folder stays loadable with [`load_sae`][saekit.sae.io.load_sae]).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

import saekit
from saekit._checks import check_device, check_finite_weights
from saekit._io import atomic_folder, dumps_json, read_json, read_safetensors
from saekit.errors import SAEError
from saekit.sae.base import ARCHITECTURES, SAE
from saekit.sae.config import SAEConfig

CONFIG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SAE_LENS_FORMAT_VERSION = "6.0.0"
"""The sae-lens config format the files follow (6.x: no pre-6 key renaming on load)."""


def save_sae(sae: SAE, folder: str | Path) -> Path:
    """Write ``sae`` to ``folder`` (created if needed) and return the folder.

    The two files are written into a sibling folder that then replaces ``folder`` as a whole
    (other files in ``folder`` are kept), so an interrupted save leaves the old SAE or the new.
    """
    if not isinstance(sae, SAE):
        raise SAEError(f"save_sae takes a saekit SAE, got {type(sae).__name__}.")
    folder = Path(folder)
    tensors = {name: value.cpu() for name, value in sae.export_tensors().items()}
    config = {
        "architecture": sae.sae_lens_architecture or sae.architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": str(sae.W_dec.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        **sae.sae_lens_fields(),
        "metadata": {
            "sae_lens_version": SAE_LENS_FORMAT_VERSION,
            "saekit_version": saekit.__version__,
            "saekit_config": sae.config.to_dict(),
        },
    }
    with atomic_folder(folder) as staging:
        save_file(tensors, staging / WEIGHTS_FILE)
        (staging / CONFIG_FILE).write_text(dumps_json(config))
    return folder


def load_sae(folder: str | Path, device: str | torch.device = "cpu") -> SAE:
    """The SAE that [`save_sae`][saekit.sae.io.save_sae] wrote to ``folder``, in eval mode without gradients."""
    check_device(device)
    folder = Path(folder)
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise SAEError(
            f"{folder} is not a saved SAE: {', '.join(missing)} missing. Pass the folder "
            f"save_sae wrote (it holds {CONFIG_FILE} and {WEIGHTS_FILE})."
        )
    fix = "Save the SAE again with save_sae."
    stored = read_json(folder / CONFIG_FILE, SAEError, fix)
    try:
        d_in, dtype = int(stored["d_in"]), getattr(torch, stored["dtype"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise SAEError(
            f"{folder / CONFIG_FILE} is not a readable SAE config ({type(err).__name__}: {err}); "
            f"save the SAE again with save_sae."
        ) from None
    saekit_config = stored.get("metadata", {}).get("saekit_config")
    if saekit_config is None:
        raise SAEError(
            f"{folder / CONFIG_FILE} has no metadata.saekit_config: the SAE was not saved by "
            f"saekit. Load it with sae_lens.SAE.load_from_disk instead."
        )
    config = SAEConfig.from_dict(saekit_config)
    sae = ARCHITECTURES[config.architecture](d_in, config).to(dtype)
    tensors = read_safetensors(folder / WEIGHTS_FILE, SAEError, fix)
    try:
        sae.import_tensors(tensors)
    except (RuntimeError, KeyError) as err:
        raise SAEError(
            f"The weights in {folder / WEIGHTS_FILE} do not fit a {config.architecture} SAE "
            f"with d_in={d_in}, d_sae={config.d_sae} ({type(err).__name__}: {err}); the "
            f"folder's files come from different SAEs. Save the SAE again with save_sae."
        ) from err
    check_finite_weights(sae, str(folder / WEIGHTS_FILE), SAEError)
    return sae.to(device).eval().requires_grad_(False)
