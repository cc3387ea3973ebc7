"""The SAE module every architecture shares, and the registry that names the architectures.

All architectures have the same parameters, in the layout sae-lens uses: ``W_enc`` [d_in, d_sae],
``b_enc`` [d_sae], ``W_dec`` [d_sae, d_in] with unit-norm rows, and ``b_dec`` [d_in], the tied
pre-encoder / post-decoder bias ``b``:

    pre = W_enc (x − b) + b_enc        f = σ(pre)        x̂ = W_dec f + b

They differ only in the sparsifying rule σ (at inference:
[`SAE.activate`][saekit.sae.base.SAE.activate]; during training, where some rules look at the
whole batch: [`SAE.training_latents`][saekit.sae.base.SAE.training_latents]), in what they add to
the reconstruction loss ([`SAE.penalty`][saekit.sae.base.SAE.penalty]), and in what they read from
the samples before training ([`SAE.prepare`][saekit.sae.base.SAE.prepare]) or fix once it ends
([`SAE.calibrate`][saekit.sae.base.SAE.calibrate]). Each architecture module registers its class with `register`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from saekit.errors import SAEError

if TYPE_CHECKING:
    from saekit.sae.config import SAEConfig

#: Architecture name → SAE class; [`SAEConfig`][saekit.sae.SAEConfig] validates against it.
ARCHITECTURES: dict[str, type[SAE]] = {}


def register(cls: type[SAE]) -> type[SAE]:
    """Class decorator: make an SAE class available under its ``architecture`` name."""
    ARCHITECTURES[cls.architecture] = cls
    return cls


@dataclass(frozen=True)
class TrainingStep:
    """What one full-batch training step hands to an architecture's [`SAE.penalty`][saekit.sae.base.SAE.penalty]."""

    centered: Float[Tensor, "n d_in"]
    """The samples minus the tied bias, x − b."""
    pre: Float[Tensor, "n d_sae"]
    latents: Float[Tensor, "n d_sae"]
    residual: Float[Tensor, "n d_in"]
    """x − x̂, the part of the samples the latents fail to reconstruct."""
    dead: Bool[Tensor, " d_sae"]
    """Latents that have not fired for ``config.dead_steps`` consecutive steps."""


class SAE(nn.Module):
    """A sparse autoencoder over ``d_in``-wide vectors (one attention-head write each).

    Build one with [`saekit.sae.train_sae`][saekit.sae.train_sae], or
    [`saekit.sae.load_sae`][saekit.sae.load_sae] from a folder.
    """

    architecture: ClassVar[str]
    signed: ClassVar[bool] = False
    """True when latents can be negative (codes then tell the sign apart)."""
    uses_k: ClassVar[bool] = False
    """True when ``config.k`` sets the number of active latents."""
    sae_lens_architecture: ClassVar[str | None] = "standard"
    """The sae-lens architecture that encodes exactly like this one; None when there is none."""

    def __init__(self, d_in: int, config: SAEConfig) -> None:
        """Random unit-norm decoder rows from a local generator seeded with ``config.seed``;
        the encoder starts as the decoder's transpose and both biases at 0."""
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        directions = F.normalize(torch.randn(config.d_sae, d_in, generator=generator), dim=-1)
        self.W_enc = nn.Parameter(directions.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(config.d_sae))
        self.W_dec = nn.Parameter(directions)
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    @property
    def d_in(self) -> int:
        return self.W_dec.shape[1]

    @property
    def d_sae(self) -> int:
        return self.W_dec.shape[0]

    def pre_activations(
        self, x: Float[Tensor, "... d_in"]
    ) -> tuple[Float[Tensor, "... d_in"], Float[Tensor, "... d_sae"]]:
        """(x − b, W_enc (x − b) + b_enc): the centred input and the latents before σ.

        The bias is folded in as b_enc − W_enc b so that backpropagation never forms the
        [n, d_in] gradient of x − b: a fifth of the cost of a training step.
        """
        return x - self.b_dec, x @ self.W_enc + (self.b_enc - self.b_dec @ self.W_enc)

    def activate(
        self, pre: Float[Tensor, "... d_sae"], centered: Float[Tensor, "... d_in"]
    ) -> Float[Tensor, "... d_sae"]:
        """σ at inference: latents from pre-activations, one sample at a time."""
        raise NotImplementedError

    def training_latents(
        self, pre: Float[Tensor, "n d_sae"], centered: Float[Tensor, "n d_in"]
    ) -> Float[Tensor, "n d_sae"]:
        """σ during training; batch-level rules override this. Defaults to `activate`."""
        return self.activate(pre, centered)

    def penalty(self, step: TrainingStep) -> Float[Tensor, ""]:
        """Everything the loss adds to the reconstruction MSE (sparsity, auxiliary terms)."""
        return step.pre.new_zeros(())

    @torch.no_grad()
    def prepare(self, samples: Float[Tensor, "n d_in"]) -> None:
        """Set what training needs from the samples before the first step; default: nothing."""

    @torch.no_grad()
    def calibrate(self, samples: Float[Tensor, "n d_in"]) -> None:
        """Fix what inference needs from the training batch (thresholds); default: nothing."""

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """The latents f of each vector in ``x``."""
        self._check_width(x, self.d_in, "encode", "input vectors")
        centered, pre = self.pre_activations(x.to(self.W_enc.dtype))
        return self.activate(pre, centered)

    def decode(self, latents: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        """The reconstruction x̂ = W_dec f + b."""
        self._check_width(latents, self.d_sae, "decode", "latent vectors")
        return latents.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        """The reconstruction of ``x``."""
        return self.decode(self.encode(x))

    def export_tensors(self) -> dict[str, Tensor]:
        """The weights under the names sae-lens reads for `sae_lens_architecture`."""
        return {name: value.detach().contiguous() for name, value in self.state_dict().items()}

    def import_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Inverse of `export_tensors`."""
        self.load_state_dict(tensors, strict=True)

    def sae_lens_fields(self) -> dict[str, object]:
        """Architecture-specific cfg.json fields sae-lens needs (``k`` for top-k SAEs)."""
        return {}

    def extra_repr(self) -> str:
        return f"architecture={self.architecture!r}, d_in={self.d_in}, d_sae={self.d_sae}"

    @staticmethod
    def _check_width(x: object, width: int, method: str, what: str) -> None:
        if not isinstance(x, Tensor):
            raise SAEError(f"SAE.{method} takes a torch.Tensor of {what}, got {type(x).__name__}.")
        if x.ndim == 0 or x.shape[-1] != width:
            got = "a scalar" if x.ndim == 0 else f"width {x.shape[-1]}"
            raise SAEError(
                f"SAE.{method} expects {what} of width {width} in the last dimension, got "
                f"{got} (shape {tuple(x.shape)}). Use an SAE trained on vectors of this width, "
                f"or pass vectors from the same hook it was trained on."
            )


class ThresholdSAE(SAE):
    """Base of the SAEs whose sparsity is allocated over the training batch.

    Batch-level rules (BatchTopK, Feature Choice, Mutual Choice) cannot run on one sample at a
    time, so after training `calibrate` turns the allocation into per-latent thresholds θ,
    and inference is the JumpReLU f = ReLU(pre) · [pre > θ] (sae-lens: ``jumprelu``). Each θ
    lies midway between the last activation the batch rule kept and the first it dropped, so
    encoding the training batch reproduces the training allocation.
    """

    sae_lens_architecture = "jumprelu"

    def __init__(self, d_in: int, config: SAEConfig) -> None:
        super().__init__(d_in, config)
        self.register_buffer("threshold", torch.zeros(config.d_sae))

    def activate(self, pre: Tensor, centered: Tensor) -> Tensor:
        return pre.relu() * (pre > self.threshold)


def boundary(values: Float[Tensor, "... m"], keep: int) -> Float[Tensor, "..."]:
    """Midway between the ``keep``-th and ``keep + 1``-th largest of ``values`` (>= 0) along
    the last dimension; 0 when ``keep`` covers them all."""
    if keep >= values.shape[-1]:
        return values.new_zeros(values.shape[:-1])
    top = values.topk(keep + 1, dim=-1).values
    return (top[..., keep - 1] + top[..., keep]).clamp(min=0) / 2


def auxiliary_reconstruction_loss(
    sae: SAE, step: TrainingStep, candidates: Bool[Tensor, " d_sae"]
) -> Float[Tensor, ""]:
    """MSE of reconstructing the step's residual from the ``candidates`` alone.

    Each sample keeps the d_in / 2 largest candidate pre-activations (by magnitude and
    signed for a signed SAE, after ReLU otherwise): AuxK (Gao et al. 2024) with the dead latents
    as candidates, aux_zipf_loss (Ayonrinde 2024) with the underused ones. The residual is a
    fixed target, so the gradient only moves the candidates towards what the others miss.
    """
    if not bool(candidates.any()):
        return step.pre.new_zeros(())
    values = step.pre if sae.signed else step.pre.relu()
    values = values * candidates
    keep = min(max(1, sae.d_in // 2), int(candidates.sum()))
    indices = values.abs().topk(keep, dim=-1).indices
    aux_latents = torch.zeros_like(values).scatter(-1, indices, values.gather(-1, indices))
    error = step.residual.detach() - aux_latents @ sae.W_dec
    return sae.config.aux_coefficient * error.pow(2).mean()
