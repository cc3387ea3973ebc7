"""saekit: find circuits in language models with sparse autoencoders on attention-head outputs.

The pipeline, one module per stage: [`saekit.tasks`][saekit.tasks] (contrastive prompts) →
[`saekit.activations`][saekit.activations] (per-head writes) → [`saekit.sae`][saekit.sae] (one shared SAE) →
[`saekit.codes`][saekit.codes] (argmax codes) → [`saekit.scoring`][saekit.scoring] (head scores, ROC AUC) →
[`saekit.ablation`][saekit.ablation] (is the circuit faithful?). Heavy libraries load on first use, so
``import saekit`` is quick.
"""

from saekit.errors import (
    ActivationError,
    HeadSetError,
    ModelError,
    ModelNotCachedError,
    ModelNotFoundError,
    SAEError,
    SaekitError,
    TaskError,
)
from saekit.models import list_models, load_model

__version__ = "0.1.0"

__all__ = [
    "ActivationError",
    "HeadSetError",
    "ModelError",
    "ModelNotCachedError",
    "ModelNotFoundError",
    "SAEError",
    "SaekitError",
    "TaskError",
    "list_models",
    "load_model",
]
