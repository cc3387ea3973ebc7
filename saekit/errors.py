"""Errors raised at saekit's public boundary.

Every message names the problem and the fix, so a learner never has to decode a shape error
from deep inside torch. Catch [`SaekitError`][saekit.errors.SaekitError] to handle all of them.
"""


class SaekitError(Exception):
    """Base class of every error saekit raises on purpose."""


class ModelError(SaekitError):
    """A model cannot be used: damaged files, NaN weights, not causal, or it does not fit a task."""


class ModelNotFoundError(ModelError):
    """The model name is neither a shipped toy model, a TransformerLens name nor a local folder."""


class ModelNotCachedError(ModelError):
    """The model exists but its weights are not in the local cache and saekit is offline."""


class TaskError(SaekitError):
    """A task is unknown, empty, or its prompts and answers do not fit together."""


class ActivationError(SaekitError):
    """Head activations could not be taken or hold invalid values (wrong hook, NaN, ...)."""


class SAEError(SaekitError):
    """An SAE's configuration or input does not fit (unknown architecture, width mismatch)."""


class HeadSetError(SaekitError):
    """A set of heads is empty, out of range or in a format saekit does not read."""


class CourseError(SaekitError):
    """A course helper was asked for an exercise that does not exist."""
