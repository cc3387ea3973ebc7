"""Discretise SAE latents into one code per (example, head): the index of the strongest latent.

The method compares *which* latent a head uses on positives and negatives, not how strongly, so
each latent vector collapses to its argmax. An all-zero latent vector (every ReLU closed) has no
strongest latent; ``torch.argmax`` would silently call it latent 0 and merge it with real uses of
latent 0. Here it gets the explicit sentinel `NO_CODE` instead. Scoring
(`saekit.scoring`) counts "no code" as a code value of its own: a head that is silent on
the negatives but active on the positives (or the reverse) behaves differently on the two sides.

An argmax code sees only *which* latent wins, so a head whose write keeps its direction and only
changes its size between the classes gets the same code on both sides. The ``argmax_level``
code kind (`CODE_KINDS`) adds how strongly the winning latent fired: its value is cut into
``n_levels`` equal-count bins by the quantiles of that latent's winning values on the SAE's
training samples (`level_edges`), and the code is ``argmax_code * n_levels + level``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saekit.errors import SAEError
from saekit.sae import SAE

NO_CODE: int = -1
"""The code of an all-zero latent vector (no latent fired), distinct from every latent index."""

CODE_KINDS = ("argmax", "argmax_level")
"""``argmax``: the strongest latent (the paper's); ``argmax_level``: the strongest latent and the
quantised size of its activation, so that a change of size alone changes the code."""


def n_codes(d_sae: int, signed: bool = False, n_levels: int = 1) -> int:
    """How many code values an SAE of width ``d_sae`` produces, not counting `NO_CODE`.

    ``n_levels`` > 1 counts ``argmax_level`` codes (``n_levels`` per argmax code).
    """
    return (2 * d_sae if signed else d_sae) * n_levels


def _check_latents(latents: Tensor) -> None:
    if latents.ndim == 0 or latents.shape[-1] == 0:
        raise SAEError(
            f"Latents of shape {tuple(latents.shape)} have no latent dimension; pass the SAE's "
            f"encoded output, shape (..., d_sae)."
        )
    if not torch.isfinite(latents).all():
        raise SAEError(
            "SAE latents contain NaN or inf, so no code is defined. The SAE diverged: lower its "
            "learning rate or check its input activations for NaN."
        )


def _strongest(latents: Float[Tensor, "... d_sae"], signed: bool) -> tuple[Int[Tensor, "..."], Float[Tensor, "..."]]:
    """The index of each vector's strongest latent and its strength (|value| when ``signed``)."""
    strength = latents.abs() if signed else latents
    best_strength, best = strength.max(dim=-1)
    return best, best_strength


def codes_from_latents(
    latents: Float[Tensor, "... d_sae"],
    signed: bool = False,
    level_edges: Float[Tensor, "d_sae n_edges"] | None = None,
) -> Int[Tensor, "..."]:
    """The argmax latent index of each latent vector; `NO_CODE` where all latents are zero.

    For SAEs whose latents can be negative (``signed=True``) the strongest latent is the one of
    largest magnitude, and its sign is part of the code: ``index`` when positive,
    ``index + d_sae`` when negative, so codes lie in ``[0, 2 * d_sae)``.

    With ``level_edges`` (from `level_edges`, ``n_levels - 1`` per latent) the code is
    ``argmax_code * n_levels + level``, where ``level`` in ``[0, n_levels)`` counts the winning
    latent's edges that its strength exceeds; codes then lie in ``[0, n_codes(d_sae, signed,
    n_levels))``.
    """
    _check_latents(latents)
    best, best_strength = _strongest(latents, signed)
    codes = best
    if signed:
        best_value = latents.gather(-1, best.unsqueeze(-1)).squeeze(-1)
        codes = torch.where(best_value < 0, best + latents.shape[-1], best)
    if level_edges is not None:
        if level_edges.ndim != 2 or level_edges.shape[0] != latents.shape[-1]:
            raise SAEError(
                f"level_edges of shape {tuple(level_edges.shape)} do not fit latents of width "
                f"{latents.shape[-1]}; fit them with level_edges(latents_of_this_sae, n_levels)."
            )
        edges = level_edges.to(latents.device)
        levels = (best_strength.unsqueeze(-1) > edges[best]).sum(-1)
        codes = codes * (edges.shape[1] + 1) + levels
    return codes.masked_fill((latents == 0).all(dim=-1), NO_CODE)


def level_edges(
    latents: Float[Tensor, "n d_sae"], n_levels: int, signed: bool = False
) -> Float[Tensor, "d_sae n_edges"]:
    """Per latent, the ``n_levels - 1`` quantiles that cut its winning strengths into equal bins.

    ``latents`` are the SAE's latents on its own training samples. A latent's winning strengths
    are its values (``|value|`` when ``signed``) on the samples where it is the strongest latent;
    the edges sit at the quantiles ``1/n_levels, ..., (n_levels-1)/n_levels`` of them. A latent
    that never wins there gets the quantiles of all samples' winning strengths, so its levels
    are still ordered by size.
    """
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 2:
        raise SAEError(f"n_levels must be an integer of at least 2, got {n_levels!r}.")
    _check_latents(latents)
    if latents.ndim != 2:
        raise SAEError(f"level_edges needs latents of shape (n, d_sae), got {tuple(latents.shape)}.")
    best, best_strength = _strongest(latents.float(), signed)
    fired = best_strength > 0
    if not fired.any():
        raise SAEError(
            "No latent fires on any training sample, so activation levels cannot be fitted; the "
            "SAE is dead: lower its sparsity coefficient or train it on more samples."
        )
    quantiles = torch.arange(1, n_levels, device=latents.device) / n_levels
    # winning strengths per latent, NaN where another latent wins: one quantile call for all
    winning = torch.full((latents.shape[-1], len(best)), float("nan"), device=latents.device)
    winning[best[fired], torch.nonzero(fired).squeeze(-1)] = best_strength[fired]
    edges = torch.nanquantile(winning, quantiles, dim=1).T
    pooled = torch.quantile(best_strength[fired], quantiles)
    return torch.where(edges.isnan(), pooled, edges)


def head_codes(
    sae: SAE,
    head_vectors: Float[Tensor, "n_examples n_heads_total d_in"],
    batch_size: int = 65536,
    level_edges: Float[Tensor, "d_sae n_edges"] | None = None,
) -> Int[Tensor, "n_examples n_heads_total"]:
    """Encode every (example, head) vector with ``sae`` and return its code.

    ``level_edges`` makes them ``argmax_level`` codes (see `codes_from_latents`).

    Vectors are encoded in chunks of ``batch_size`` rows so that a large model's heads never
    need the full ``n_examples * n_heads * d_sae`` latent tensor at once.
    """
    d_in = sae.d_in
    if head_vectors.ndim != 3 or head_vectors.shape[-1] != d_in:
        raise SAEError(
            f"The SAE reads vectors of width {d_in} but the head activations have shape "
            f"{tuple(head_vectors.shape)} (expected (n_examples, n_heads, {d_in})). Train the SAE "
            f"on the same activation kind ('result' is d_model wide, 'z' is d_head wide)."
        )
    flat = head_vectors.reshape(-1, d_in)
    device = sae.W_enc.device
    with torch.no_grad():
        codes = torch.cat([
            codes_from_latents(sae.encode(chunk.to(device)), signed=sae.signed, level_edges=level_edges)
            for chunk in flat.split(batch_size)
        ])
    return codes.reshape(head_vectors.shape[:2]).to(head_vectors.device)

