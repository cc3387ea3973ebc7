"""A plain-torch attention-only transformer with HookedTransformer's parameter names and maths.

Training through TransformerLens is about ten times slower than a plain module, so the toy
models are trained as `AttnOnlyTransformer` and shipped as its state dict, which *is* a
HookedTransformer state dict: ``embed.W_E``, ``pos_embed.W_pos``, ``blocks.L.ln1.w``,
``blocks.L.attn.W_Q`` (``[n_heads, d_model, d_head]``), ..., ``unembed.W_U``. The forward pass
computes what HookedTransformer computes for ``attn_only=True``, ``normalization_type="LN"``
and learned positional embeddings, so the TransformerLens model built from the same weights
gives the same logits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ToyModelConfig:
    """The shape of an attention-only toy transformer."""

    d_vocab: int
    """Vocabulary size: ``len(saekit.tasks.toy.VOCABULARY)`` for the shipped models."""
    n_layers: int = 4
    n_heads: int = 8
    d_model: int = 64
    d_head: int = 16
    n_ctx: int = 64
    eps: float = 1e-5

    def tl_config(self) -> dict[str, Any]:
        """The HookedTransformerConfig fields of this model (what ``config.json`` ships)."""
        return {
            **asdict(self),
            "d_vocab_out": self.d_vocab,
            "attn_only": True,
            "normalization_type": "LN",
            "positional_embedding_type": "standard",
            "act_fn": None,
            "d_mlp": None,
            "default_prepend_bos": True,
            "original_architecture": "saekit-toy",
        }

    @classmethod
    def from_tl_config(cls, tl_config: dict[str, Any]) -> ToyModelConfig:
        return cls(**{name: tl_config[name] for name in cls.__dataclass_fields__})


def sinusoidal_positions(n_ctx: int, d_model: int) -> Float[Tensor, "n_ctx d_model"]:
    """The sinusoidal table of Vaswani et al.; the learned W_pos starts from it (scaled), which
    makes "attend to the previous token" easy to learn early (a fixed rotation between positions)."""
    position = torch.arange(n_ctx, dtype=torch.float32)[:, None]
    frequency = torch.exp(-math.log(10_000.0) * torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.zeros(n_ctx, d_model)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
    return table


class _Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int) -> None:
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(d_vocab, d_model))


class _PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int) -> None:
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(n_ctx, d_model))


class _LayerNorm(nn.Module):
    """Centre, divide by the root mean square (+ eps), then scale ``w`` and shift ``b``."""

    def __init__(self, d_model: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        centred = x - x.mean(-1, keepdim=True)
        scale = (centred.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
        return centred / scale * self.w + self.b


class _Attention(nn.Module):
    def __init__(self, cfg: ToyModelConfig) -> None:
        super().__init__()
        h, d, e = cfg.n_heads, cfg.d_model, cfg.d_head
        for name in ("W_Q", "W_K", "W_V"):
            setattr(self, name, nn.Parameter(torch.empty(h, d, e)))
        for name in ("b_Q", "b_K", "b_V"):
            setattr(self, name, nn.Parameter(torch.zeros(h, e)))
        self.W_O = nn.Parameter(torch.empty(h, e, d))
        self.b_O = nn.Parameter(torch.zeros(d))

    def _qkv(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "3 batch n_heads pos d_head"]:
        """Queries, keys and values of every head."""
        weights = torch.stack([self.W_Q, self.W_K, self.W_V])
        biases = torch.stack([self.b_Q, self.b_K, self.b_V])[:, None, :, None, :]
        return torch.einsum("bpd,nhde->nbhpe", x, weights) + biases

    def head_z(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos n_heads d_head"]:
        """Each head's attention-weighted values (TransformerLens' ``hook_z``)."""
        q, k, v = self._qkv(x)
        # Causal softmax(q k^T / sqrt(d_head)) v, fused: the same maths as HookedTransformer.
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)

    def pattern(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch n_heads query key"]:
        """Each head's causal attention pattern (TransformerLens' ``hook_pattern``)."""
        q, k, _ = self._qkv(x)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).triu(1)
        return scores.masked_fill(future, float("-inf")).softmax(-1)

    def head_results(self, z: Float[Tensor, "batch pos n_heads d_head"]) -> Float[Tensor, "batch pos n_heads d_model"]:
        """Each head's write into the residual stream, ``z · W_O[h]`` (TransformerLens' ``hook_result``)."""
        return torch.einsum("bphe,hed->bphd", z, self.W_O)


@dataclass(frozen=True)
class ZPatch:
    """Replacement z for one layer: where ``heads`` is set, the head's z is taken from ``z``
    (an interchange intervention at ``hook_z``, one choice of heads per prompt)."""

    z: Float[Tensor, "batch pos n_heads d_head"]
    heads: Bool[Tensor, "batch n_heads"]


class _Block(nn.Module):
    def __init__(self, cfg: ToyModelConfig) -> None:
        super().__init__()
        self.ln1 = _LayerNorm(cfg.d_model, cfg.eps)
        self.attn = _Attention(cfg)

    def forward(
        self, resid: Float[Tensor, "batch pos d_model"], patch: ZPatch | None = None
    ) -> tuple[Float[Tensor, "batch pos d_model"], Float[Tensor, "batch pos n_heads d_model"], Float[Tensor, "batch pos n_heads d_head"]]:
        """The residual stream after this block, each head's write into it, and each head's z
        (after ``patch``, if given, replaced the z of the heads it selects)."""
        z = self.attn.head_z(self.ln1(resid))
        if patch is not None:
            z = torch.where(patch.heads[:, None, :, None], patch.z, z)
        results = self.attn.head_results(z)
        return resid + results.sum(2) + self.attn.b_O, results, z


class _Unembed(nn.Module):
    def __init__(self, d_model: int, d_vocab: int) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(d_model, d_vocab))
        self.b_U = nn.Parameter(torch.zeros(d_vocab))


class AttnOnlyTransformer(nn.Module):
    """Attention-only transformer whose ``state_dict()`` loads into HookedTransformer as is."""

    def __init__(self, cfg: ToyModelConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = _Embed(cfg.d_vocab, cfg.d_model)
        self.pos_embed = _PosEmbed(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final = _LayerNorm(cfg.d_model, cfg.eps)
        self.unembed = _Unembed(cfg.d_model, cfg.d_vocab)
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Weight matrices normal with std 1/sqrt(d_model), from a generator seeded by ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        std = 1 / math.sqrt(self.cfg.d_model)
        for name, param in self.named_parameters():
            if name.split(".")[-1] in ("W_E", "W_Q", "W_K", "W_V", "W_O", "W_U"):
                param.normal_(0.0, std, generator=generator)
        self.pos_embed.W_pos.copy_(sinusoidal_positions(self.cfg.n_ctx, self.cfg.d_model) * std)

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.unembed.W_U.device

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
        return self.forward_with_head_shares(tokens)[0]

    def forward_with_head_shares(
        self, tokens: Int[Tensor, "batch pos"]
    ) -> tuple[Float[Tensor, "batch pos d_vocab"], Float[Tensor, "batch pos n_layers n_heads"]]:
        """Logits, and each head's share of the residual stream: the norm of its write at each
        position over the norm of the final residual there (the denominator held constant, so
        that a penalty on shares shrinks heads rather than inflating the rest of the stream)."""
        resid, results = self.residual_and_head_results(tokens)
        logits = self.unembed_residual(resid)
        write_norms = torch.stack([layer_results.norm(dim=-1) for layer_results in results], 2)
        return logits, write_norms / resid.norm(dim=-1)[:, :, None, None].detach()

    def residual_and_head_results(
        self, tokens: Int[Tensor, "batch pos"]
    ) -> tuple[Float[Tensor, "batch pos d_model"], list[Float[Tensor, "batch pos n_heads d_model"]]]:
        """The final residual stream (before ``ln_final``) and every layer's per-head writes."""
        resid, results, _ = self.run_layers(tokens)
        return resid, results

    def run_layers(
        self, tokens: Int[Tensor, "batch pos"], patches: list[ZPatch | None] | None = None
    ) -> tuple[
        Float[Tensor, "batch pos d_model"],
        list[Float[Tensor, "batch pos n_heads d_model"]],
        list[Float[Tensor, "batch pos n_heads d_head"]],
    ]:
        """The final residual stream, every layer's per-head writes and z, with each layer's
        ``patches`` entry (if any) applied to its z."""
        resid = self.embedded(tokens)
        results, zs = [], []
        for layer, block in enumerate(self.blocks):
            resid, layer_results, z = block(resid, None if patches is None else patches[layer])
            results.append(layer_results)
            zs.append(z)
        return resid, results, zs

    def embedded(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        """The residual stream entering the first block: token and position embeddings."""
        return self.embed.W_E[tokens] + self.pos_embed.W_pos[: tokens.shape[1]]

    @torch.no_grad()
    def attention_patterns(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "n_layers batch n_heads query key"]:
        """Every head's attention pattern on ``tokens``."""
        resid = self.embedded(tokens)
        patterns = []
        for block in self.blocks:
            patterns.append(block.attn.pattern(block.ln1(resid)))
            resid = block(resid)[0]
        return torch.stack(patterns)

    def unembed_residual(self, resid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits from the final residual stream."""
        return self.ln_final(resid) @ self.unembed.W_U + self.unembed.b_U

    def residual_scale_parameters(self) -> list[nn.Parameter]:
        """What writes into the residual stream: multiplying all of these by one factor scales the
        stream and leaves the logits unchanged (up to LayerNorm's eps), since every reader of the
        stream normalises it first."""
        writers = [self.embed.W_E, self.pos_embed.W_pos]
        for block in self.blocks:
            writers += [block.attn.W_O, block.attn.b_O]
        return writers


def load_toy_module(folder: str | Path) -> AttnOnlyTransformer:
    """The plain-torch module of a saved toy model (``config.json`` + ``model.safetensors``)."""
    from saekit.zoo import read_toy_weights

    tl_config, state_dict = read_toy_weights(folder)
    model = AttnOnlyTransformer(ToyModelConfig.from_tl_config(tl_config))
    model.load_state_dict(state_dict)
    return model.eval()
