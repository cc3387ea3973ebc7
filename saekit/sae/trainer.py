"""Train one SAE on a full batch of vectors (the paper: 10 examples × all heads).

Full-batch Adam; after every step the decoder rows are put back on the unit sphere (the
gradient's radial component is removed first, so Adam's moments do not accumulate it).
Deterministic for a given ``config.seed``: the initial weights come from a local
``torch.Generator`` and no step draws random numbers; the global RNG is never touched.

Adam is written out here (Kingma & Ba 2015, β = (0.9, 0.999), ε = 1e-8, as torch.optim.Adam):
``torch.optim``'s first step imports ``torch._dynamo``, which takes 1-3 s, longer than a whole
500-step training run on the paper's 10 × n_heads samples.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from saekit.errors import SAEError
from saekit.sae.base import ARCHITECTURES, SAE, TrainingStep
from saekit.sae.config import SAEConfig

MIN_SAMPLES = 2
"""Fewer vectors than this leave nothing to reconstruct about their mean."""
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def train_sae(samples: Float[Tensor, "n d_in"], config: SAEConfig | None = None) -> SAE:
    """An SAE trained on ``samples`` (one vector per row) with ``config`` (default: the paper's).

    The returned SAE is in eval mode with gradients switched off; call
    ``sae.requires_grad_(True)`` to train it further yourself.
    """
    config = SAEConfig() if config is None else config
    if not isinstance(config, SAEConfig):
        raise SAEError(f"train_sae takes an SAEConfig, got {type(config).__name__}.")
    x = _checked_samples(samples)
    sae = ARCHITECTURES[config.architecture](x.shape[1], config).to(x.device, x.dtype)
    sae.prepare(x)
    with torch.enable_grad():  # a notebook may have switched gradients off (torch.set_grad_enabled(False))
        _optimise(sae, x, config)
    if not all(torch.isfinite(p).all() for p in sae.parameters()):
        raise SAEError(
            f"SAE training diverged (non-finite weights after {config.steps} steps at "
            f"lr={config.lr}); lower SAEConfig.lr or check the samples' scale."
        )
    sae.calibrate(x)
    return sae.eval().requires_grad_(False)


def _optimise(sae: SAE, x: Float[Tensor, "n d_in"], config: SAEConfig) -> None:
    """``config.steps`` full-batch Adam steps on the reconstruction loss plus the SAE's penalty,
    with unit-norm decoder rows after each."""
    parameters = list(sae.parameters())
    first_moments = [torch.zeros_like(p) for p in parameters]
    second_moments = [torch.zeros_like(p) for p in parameters]
    steps_since_fired = torch.zeros(config.d_sae, dtype=torch.long, device=x.device)
    for step_number in range(1, config.steps + 1):
        centered, pre = sae.pre_activations(x)
        latents = sae.training_latents(pre, centered)
        residual = x - (latents @ sae.W_dec + sae.b_dec)
        steps_since_fired = torch.where((latents != 0).any(dim=0), 0, steps_since_fired + 1)
        dead = steps_since_fired >= config.dead_steps
        step = TrainingStep(centered, pre, latents, residual, dead)
        loss = residual.pow(2).mean() + sae.penalty(step)
        gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
        with torch.no_grad():
            _adam_step(parameters, gradients, first_moments, second_moments, step_number, config.lr,
                       sae.W_dec)
            sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)


def _adam_step(
    parameters: list[Tensor],
    gradients: tuple[Tensor | None, ...],
    first_moments: list[Tensor],
    second_moments: list[Tensor],
    step_number: int,
    lr: float,
    unit_rows: Tensor,
) -> None:
    """One Adam update in place; ``unit_rows``' gradient loses its component along each row."""
    beta1, beta2 = ADAM_BETAS
    step_size = lr / (1 - beta1**step_number)
    second_correction = (1 - beta2**step_number) ** 0.5
    for parameter, gradient, m, v in zip(parameters, gradients, first_moments, second_moments):
        if gradient is None:
            continue
        if parameter is unit_rows:
            gradient = gradient - (gradient * parameter).sum(-1, keepdim=True) * parameter
        m.lerp_(gradient, 1 - beta1)
        v.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
        parameter.addcdiv_(m, (v.sqrt() / second_correction).add_(ADAM_EPS), value=-step_size)


def _checked_samples(samples: object) -> Float[Tensor, "n d_in"]:
    if not isinstance(samples, Tensor):
        raise SAEError(
            f"train_sae takes a torch.Tensor of shape [n_samples, d_in], got "
            f"{type(samples).__name__}; stack the vectors with torch.stack first."
        )
    if samples.ndim != 2:
        raise SAEError(
            f"train_sae takes samples of shape [n_samples, d_in], got shape "
            f"{tuple(samples.shape)}; flatten the leading dimensions, e.g. "
            f"samples.reshape(-1, samples.shape[-1])."
        )
    if not samples.is_floating_point():
        raise SAEError(f"train_sae needs floating-point samples, got dtype {samples.dtype}.")
    if samples.shape[0] < MIN_SAMPLES or samples.shape[1] < 1:
        raise SAEError(
            f"train_sae needs at least {MIN_SAMPLES} samples of width >= 1, got shape "
            f"{tuple(samples.shape)}; use more examples."
        )
    if not torch.isfinite(samples).all():
        n_bad = int((~torch.isfinite(samples)).any(dim=1).sum())
        raise SAEError(
            f"{n_bad} of {samples.shape[0]} samples contain NaN or inf; fix the activations "
            f"that produced them (or drop those rows) before training."
        )
    if samples.dtype in (torch.float16, torch.bfloat16):
        return samples.float()
    return samples.detach()
