"""A test-bed run's training state, saved as it trains, so that an interrupted run continues
from its last checkpoint and ends with the weights of one uninterrupted run, bit for bit (same
machine, thread count and device).

The state is everything a step carries to the next: the weights, the optimizer's moments, the
placed circuits, the loss history the log averages, the one-head draw's weights and the next
step's index. Every other random choice is seeded by the step (`saekit.zoo.train._step_seed`),
so nothing else needs saving. A checkpoint records its config and continues only that config.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saekit._io import atomic_file, dumps_json
from saekit.errors import SaekitError


@dataclass
class TrainingState:
    """What `saekit.zoo.testbed.train_testbed` needs to continue a run at ``step``."""

    step: int
    """The next step to run: the state is the one after steps 0 … step − 1."""
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    circuits: dict[str, list[tuple[int, int, str]]]
    history: list[list[float]]
    """Per step run, the generic, behaviour, interchange and strictness losses."""
    draw_weights: dict[str, Tensor]


def _config_json(config: Any) -> str:
    """The recipe's settings and the model's shape (``asdict`` nests the shape's dataclass)."""
    return dumps_json(asdict(config))


def save_training_state(path: str | Path, state: TrainingState, config: Any) -> None:
    """Write ``state`` and the ``config`` it belongs to to ``path`` atomically (the old
    checkpoint stays whole until the new one replaces it)."""
    document = {
        "config": _config_json(config), "step": state.step, "model": state.model, "optimizer": state.optimizer,
        "circuits": state.circuits, "history": state.history,
        "draw_weights": {task: weights.cpu() for task, weights in state.draw_weights.items()},
    }
    with atomic_file(path) as temporary:
        torch.save(document, temporary)


def load_training_state(path: str | Path, config: Any) -> TrainingState | None:
    """The state saved in ``path`` for ``config``; None if there is no such file yet.

    A checkpoint of another config (another seed, recipe setting or shape) is refused, with the
    settings that differ, and so is a damaged one: continuing either would give a model that no
    config describes."""
    path = Path(path)
    if not path.exists():
        return None
    fix = f"Delete {path} to train from step 0, or name another checkpoint file."
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
        recorded = json.loads(document["config"])
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise SaekitError(f"{path} is not a saekit training checkpoint ({type(err).__name__}: {err}). {fix}") from None
    wanted = json.loads(_config_json(config))
    differing = sorted(key for key in recorded.keys() | wanted.keys() if recorded.get(key) != wanted.get(key))
    if differing:
        raise SaekitError(f"{path} is the checkpoint of a run with other settings ({', '.join(differing)} differ). {fix}")
    return TrainingState(
        step=document["step"], model=document["model"], optimizer=document["optimizer"],
        circuits={task: [tuple(head) for head in heads] for task, heads in document["circuits"].items()},
        history=document["history"], draw_weights=document["draw_weights"],
    )
