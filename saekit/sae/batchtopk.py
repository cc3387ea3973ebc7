"""BatchTopK SAE (Bussmann, Leask & Nanda 2024, "BatchTopK Sparse Autoencoders").

    training:  f = BatchTopK_{n·k}(ReLU(W_enc (x − b) + b_enc))    (over the whole batch)
    inference: f = ReLU(pre) · [pre > θ]                           x̂ = W_dec f + b
    loss = MSE(x̂, x) + α · AuxK

BatchTopK keeps the n·k largest activations of the n-sample batch, wherever they fall, so a
hard sample can use more latents than an easy one while the mean L0 stays k. The paper
estimates the inference threshold θ from the smallest kept activations over training
batches; training here is full-batch, so θ comes from the final batch itself (midway between
the last kept and the first dropped activation, see `ThresholdSAE`).
AuxK as in `saekit.sae.topk`. sae-lens: ``jumprelu`` with θ for every latent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from saekit.sae.base import (
    ThresholdSAE,
    TrainingStep,
    auxiliary_reconstruction_loss,
    boundary,
    register,
)


def batch_top(activations: Tensor, keep: int) -> Tensor:
    """``activations`` with all but the ``keep`` largest entries of the whole tensor zeroed."""
    flat = activations.flatten()
    mask = torch.zeros_like(flat).index_fill(0, flat.topk(min(keep, flat.numel())).indices, 1.0)
    return activations * mask.view_as(activations)


@register
class BatchTopKSAE(ThresholdSAE):
    """k active latents per sample on average over the batch."""

    architecture = "batchtopk"
    uses_k = True

    def training_latents(self, pre: Tensor, centered: Tensor) -> Tensor:
        return batch_top(pre.relu(), pre.shape[0] * self.config.k)

    def penalty(self, step: TrainingStep) -> Tensor:
        return auxiliary_reconstruction_loss(self, step, step.dead)

    @torch.no_grad()
    def calibrate(self, samples: Tensor) -> None:
        _, pre = self.pre_activations(samples)
        self.threshold.fill_(float(boundary(pre.relu().flatten(), pre.shape[0] * self.config.k)))
