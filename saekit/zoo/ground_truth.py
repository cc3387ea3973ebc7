"""The toy models' ground-truth circuits, found the expensive way: per-head resample patching.

For each task, every head's ``hook_z`` is patched alone from the paired negative into the
positive ([`saekit.ablation.head_patching_effects`][saekit.ablation.head_patching_effects]), and
the head belongs to the circuit when that moves the mean metric by at least `EFFECT_FRACTION` of the whole
clean-to-corrupted difference (in either direction: heads that work against the answer count,
as the negative name movers of IOI do). Run ``saekit zoo ground-truth --model toy-4l`` to
recompute ``ground_truth.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from saekit._io import check_file_target, write_json
from saekit.errors import ModelNotFoundError
from saekit.tasks import TASK_NAMES, make_task

#: A head is in a circuit when patching it alone moves the metric by this share of the gap.
EFFECT_FRACTION = 0.10
#: Task size and seed the shipped ground truth is computed with.
GROUND_TRUTH_PAIRS = 250
GROUND_TRUTH_SEED = 0

RULE = (
    f"head (l, h) is in a task's circuit when resample-patching its hook_z alone (positive "
    f"prompt, z taken from the paired negative) moves the mean task metric by at least "
    f"{EFFECT_FRACTION:g} x |clean metric - corrupted metric|, in either direction; "
    f"{GROUND_TRUTH_PAIRS} pairs generated with seed {GROUND_TRUTH_SEED}"
)


def circuit_mask(
    effects: Float[Tensor, "n_layers n_heads"], clean_metric: float, corrupted_metric: float
) -> Bool[Tensor, "n_layers n_heads"]:
    """The heads whose single-head patching effect reaches the membership threshold."""
    return effects.abs() >= EFFECT_FRACTION * abs(clean_metric - corrupted_metric)


def task_ground_truth(model, task_name: str, n_pairs: int = GROUND_TRUTH_PAIRS, seed: int = GROUND_TRUTH_SEED) -> dict[str, Any]:
    """Effects, clean and corrupted metric, and circuit heads of one task, as stored in the JSON."""
    from saekit.ablation import head_patching_effects
    from saekit.zoo.evaluate import evaluate_task

    task = make_task(task_name, model, n_pairs=n_pairs, seed=seed)
    scores = evaluate_task(model, task)
    effects = head_patching_effects(model, task)
    mask = circuit_mask(effects, scores.pos_metric, scores.neg_metric)
    return {
        "heads": [[int(layer), int(head)] for layer, head in torch.nonzero(mask).tolist()],
        "effects": [[round(float(e), 6) for e in row] for row in effects],
        "clean_metric": scores.pos_metric,
        "corrupted_metric": scores.neg_metric,
    }


def compute_ground_truth(model_name: str) -> dict[str, Any]:
    """The ground-truth document of a shipped toy model (the format of ``ground_truth.json``)."""
    from saekit.models import load_model

    model = load_model(model_name)
    return {
        "model": model_name,
        "rule": RULE,
        "tasks": {name: task_ground_truth(model, name) for name in TASK_NAMES},
    }


def write_ground_truth(model_name: str, out: str | Path | None = None) -> Path:
    """Compute and write ``ground_truth.json`` (default: into the model's shipped folder)."""
    from saekit.zoo import toy_model_dir, toy_model_names

    if out is None and model_name not in toy_model_names():
        raise ModelNotFoundError(
            f"{model_name!r} is not a shipped toy model, so it has no folder to hold its "
            f"ground_truth.json; name a file to write with --out (out=...)."
        )
    path = check_file_target(out if out is not None else toy_model_dir(model_name) / "ground_truth.json")
    return write_json(path, compute_ground_truth(model_name))

