"""What saekit's dataclass configs share: they serialise to JSON and refuse keys they lack."""

from __future__ import annotations

from dataclasses import fields
from difflib import get_close_matches
from typing import Any


def reject_unknown_fields(cls: type | tuple[type, ...], values: Any, error: type[Exception]) -> None:
    """Raise ``error`` naming any key of ``values`` that is not a field of dataclass(es) ``cls``,
    with the nearest field name as a suggestion; also when ``values`` is not a dict at all.

    A misspelt key in a saved config would otherwise be dropped silently or fail deep inside
    the constructor.
    """
    classes = cls if isinstance(cls, tuple) else (cls,)
    label = " or ".join(c.__name__ for c in classes)
    if not isinstance(values, dict):
        raise error(f"A {label} is read from a dict of its fields, got {type(values).__name__}.")
    known = {f.name for c in classes for f in fields(c)}
    unknown = sorted(set(values) - known)
    if unknown:
        guesses = {key: get_close_matches(str(key), known, n=1) for key in unknown}
        hints = "".join(f" {key!r}: did you mean {guess[0]!r}?" for key, guess in guesses.items() if guess)
        raise error(f"Unknown {label} field(s) {unknown}.{hints} The fields are {sorted(known)}.")
