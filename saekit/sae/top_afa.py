"""Top-AFA SAE (Lee, Davies, Canby & Hockenmaier 2025, "Evaluating and Designing Sparse
Autoencoders by Approximating Quasi-Orthogonality").

    a = ReLU(W_enc (x − b) + b_enc), sorted per sample: a_(1) >= a_(2) >= ...
    f keeps a_(1..j) for the smallest j with a_(1)² + ... + a_(j)² >= ‖x − b‖²
    x̂ = W_dec f + b,     loss = MSE(x̂, x) + α · mean_n (‖f‖₂ − ‖x − b‖₂)² / d_in

With unit-norm, nearly orthogonal decoder rows ‖W_dec f‖ ≈ ‖f‖, so the norm of the dense input
(the approximate feature activation, AFA) says how much activation a sample needs: each sample
keeps latents, largest first, until that norm is reached, and no k is set. The AFA loss
(α = ``aux_coefficient``) keeps ‖f‖ near that target. sae-lens has no activation that picks a
per-sample number of latents, so a saved top_afa SAE loads with [`saekit.sae.load_sae`][saekit.sae.load_sae]
only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from saekit.sae.base import SAE, TrainingStep, register


@register
class TopAFASAE(SAE):
    """As many latents per sample as its norm calls for."""

    architecture = "top_afa"
    sae_lens_architecture = None

    def activate(self, pre: Tensor, centered: Tensor) -> Tensor:
        activations = pre.relu()
        ordered, order = activations.sort(dim=-1, descending=True)
        energy_before = ordered.pow(2).cumsum(-1) - ordered.pow(2)
        target = centered.pow(2).sum(-1, keepdim=True)
        keep_sorted = (energy_before < target) & (ordered > 0)
        keep = torch.zeros_like(activations).scatter(-1, order, keep_sorted.to(pre.dtype))
        return activations * keep

    def penalty(self, step: TrainingStep) -> Tensor:
        gap = step.latents.norm(dim=-1) - step.centered.norm(dim=-1)
        return self.config.aux_coefficient * gap.pow(2).mean() / self.d_in
