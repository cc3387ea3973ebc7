"""AbsTopK SAE ("AbsTopK: Rethinking Sparse Autoencoders for Bidirectional Features",
arXiv 2510.00404, 2025): latents of either sign.

    f = AbsTopK_k(W_enc (x − b) + b_enc)        x̂ = W_dec f + b
    loss = MSE(x̂, x) + α · AuxK

AbsTopK_k keeps each sample's k pre-activations of largest magnitude with their signs (no ReLU),
so one latent can describe a direction and its opposite. The SAE is ``signed``: codes then use
argmax |f| and tell the sign apart (index for positive, index + d_sae for negative).
AuxK as in `saekit.sae.topk`, on magnitudes. sae-lens: ``abstopk``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from saekit.sae.base import register
from saekit.sae.topk import TopKSAE


@register
class AbsTopKSAE(TopKSAE):
    """The k largest-magnitude pre-activations per sample, signs kept."""

    architecture = "abstopk"
    signed = True
    sae_lens_architecture = "abstopk"

    def activate(self, pre: Tensor, centered: Tensor) -> Tensor:
        indices = pre.abs().topk(self.config.k, dim=-1).indices
        return torch.zeros_like(pre).scatter(-1, indices, pre.gather(-1, indices))
