"""Feature Choice SAE (Ayonrinde 2024, "Adaptive Sparse Allocation with Mutual Choice & Feature
Choice Sparse Autoencoders").

    training:  f[:, i] = Top_m(ReLU(pre[:, i])) for every latent i,   m = round(n·k / d_sae)
    inference: f = ReLU(pre) · [pre > θ_i]                            x̂ = W_dec f + b
    loss = MSE(x̂, x) + α · aux_zipf_loss

Each latent chooses the m samples it activates most on, so the batch's n·k matches are shared
equally between latents: every latent gets its share, none can die, and samples get as many
latents as chose them. aux_zipf_loss as in `saekit.sae.mutual_choice`. After training,
θ_i lies midway between latent i's m-th and (m+1)-th largest activation on the training batch;
sae-lens: ``jumprelu`` with these per-latent thresholds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from saekit.sae.base import ThresholdSAE, TrainingStep, boundary, register
from saekit.sae.mutual_choice import aux_zipf_loss


@register
class FeatureChoiceSAE(ThresholdSAE):
    """Every latent activates on its m best samples of the batch."""

    architecture = "feature_choice"
    uses_k = True

    def samples_per_latent(self, n_samples: int) -> int:
        """m: the batch budget n·k split evenly over the latents, at least 1, at most n."""
        return min(n_samples, max(1, round(n_samples * self.config.k / self.d_sae)))

    def training_latents(self, pre: Tensor, centered: Tensor) -> Tensor:
        activations = pre.relu()
        chosen = activations.topk(self.samples_per_latent(pre.shape[0]), dim=0).indices
        return activations * torch.zeros_like(activations).scatter(0, chosen, 1.0)

    def penalty(self, step: TrainingStep) -> Tensor:
        return aux_zipf_loss(self, step)

    @torch.no_grad()
    def calibrate(self, samples: Tensor) -> None:
        _, pre = self.pre_activations(samples)
        self.threshold.copy_(boundary(pre.relu().T, self.samples_per_latent(pre.shape[0])))
