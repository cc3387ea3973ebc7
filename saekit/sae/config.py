"""The SAE's configuration: one dataclass for every architecture, saved as JSON next to the SAE.

The defaults are the paper's (O'Neill & Bui 2024): a ReLU SAE with 200 latents, L1 coefficient
0.02 (use 0.05 for docstring), Adam at lr 1e-3 for 500 full-batch steps. Fields that only one
family of architectures reads say so in their comment; the others ignore them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from saekit._config import reject_unknown_fields
from saekit.errors import SAEError


@dataclass(frozen=True)
class SAEConfig:
    """How to build and train one SAE. ``SAEConfig.from_dict(cfg.to_dict()) == cfg``."""

    architecture: str = "relu"
    d_sae: int = 200
    l1_coefficient: float = 0.02
    lr: float = 1e-3
    steps: int = 500
    seed: int = 0
    # topk, batchtopk, abstopk, feature_choice, mutual_choice: active latents per sample
    # (per-sample exactly for topk/abstopk, on average over the batch for the others).
    k: int = 4
    # topk, batchtopk, abstopk (AuxK), feature_choice, mutual_choice (aux Zipf) and top_afa
    # (AFA norm loss): weight of the auxiliary loss.
    aux_coefficient: float = 1 / 32
    # A latent that has not fired for this many consecutive steps counts as dead (AuxK).
    dead_steps: int = 50
    # jumprelu, relative to the samples' per-dimension standard deviation σ (see
    # saekit.sae.jumprelu): L0 weight (fraction of a sample's variance a latent must remove),
    # initial threshold / σ, and the straight-through estimator's kernel bandwidth / σ.
    l0_coefficient: float = 0.01
    jumprelu_threshold: float = 1.0
    jumprelu_bandwidth: float = 1.0

    def __post_init__(self) -> None:
        from saekit.sae.base import ARCHITECTURES

        if self.architecture not in ARCHITECTURES:
            raise SAEError(
                f"Unknown SAE architecture {self.architecture!r}; choose one of "
                f"{sorted(ARCHITECTURES)} (SAEConfig(architecture=...))."
            )
        positive_ints = {"d_sae": self.d_sae, "steps": self.steps, "k": self.k,
                         "dead_steps": self.dead_steps}
        for name, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SAEError(f"SAEConfig.{name} must be a positive integer, got {value!r}.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise SAEError(f"SAEConfig.seed must be an integer, got {self.seed!r}.")
        positive_floats = {"lr": self.lr, "jumprelu_threshold": self.jumprelu_threshold,
                           "jumprelu_bandwidth": self.jumprelu_bandwidth}
        for name, value in positive_floats.items():
            if not _is_finite_number(value) or value <= 0:
                raise SAEError(f"SAEConfig.{name} must be a positive number, got {value!r}.")
        for name in ("l1_coefficient", "aux_coefficient", "l0_coefficient"):
            value = getattr(self, name)
            if not _is_finite_number(value) or value < 0:
                raise SAEError(
                    f"SAEConfig.{name} must be a number >= 0 (0 switches the term off), "
                    f"got {value!r}."
                )
        if ARCHITECTURES[self.architecture].uses_k and self.k > self.d_sae:
            raise SAEError(
                f"SAEConfig.k={self.k} exceeds d_sae={self.d_sae}; a {self.architecture} SAE "
                f"cannot keep more latents than it has. Lower k or raise d_sae."
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SAEConfig:
        """Rebuild a config from `to_dict`'s output; unknown keys are an error."""
        reject_unknown_fields(cls, values, SAEError)
        return cls(**values)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
