"""Ground-truth circuit heads that discovered scores are measured against.

The pretrained sets come from the circuit papers: IOI in GPT-2 small (Wang et al., 26 heads),
greater-than in GPT-2 small (Hanna et al., 9 heads; its MLPs are not scored) and docstring in
attn-only-4l (Heimersheim & Janiak, 6 heads). ``variant="authors"`` gives the sets as O'Neill &
Bui's code has them (11.3 for 9.0 in IOI; 1.0 for 1.2 in docstring), to reproduce their
numbers exactly. Shipped toy models carry their own sets in ``ground_truth.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool
from torch import Tensor

from saekit.errors import HeadSetError, TaskError

Head = tuple[int, int]

_HEAD_STRING = re.compile(r"^\s*(\d+)\s*\.\s*(\d+)\s*$")
#: The head-set formats saekit reads, for error messages.
HEAD_FORMATS = (
    "a list of (layer, head) pairs like [(9, 9), (10, 0)], a list of 'L.H' strings like "
    "['9.9', '10.0'], or a boolean mask of shape [n_layers, n_heads]"
)


def parse_head(item: Any) -> Head:
    """One head as a (layer, head) pair, from a pair of integers or an "L.H" string."""
    if isinstance(item, str):
        match = _HEAD_STRING.match(item)
        if match is None:
            raise HeadSetError(f"Cannot read head {item!r}: write a head as 'layer.head', e.g. '9.9'.")
        return int(match[1]), int(match[2])
    if (
        isinstance(item, (tuple, list))
        and len(item) == 2
        and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in item)
    ):
        return int(item[0]), int(item[1])
    raise HeadSetError(f"Cannot read head {item!r}; give {HEAD_FORMATS}.")


def _parse(heads: str) -> frozenset[Head]:
    """Parse the papers' layer.head notation: "9.9 10.0" → {(9, 9), (10, 0)}."""
    return frozenset(parse_head(head) for head in heads.split())


_IOI = (
    "9.9 10.0 9.6 "  # name movers
    "10.10 10.6 10.2 10.1 11.2 9.7 9.0 11.9 "  # backup name movers
    "10.7 11.10 "  # negative name movers
    "7.3 7.9 8.6 8.10 "  # S-inhibition
    "5.5 5.8 5.9 6.9 "  # induction
    "0.1 0.10 3.0 "  # duplicate token
    "2.2 4.11"  # previous token
)
_GREATER_THAN = "0.1 0.3 0.5 5.5 6.1 6.9 7.10 8.11 9.1"
_DOCSTRING = "0.5 1.2 1.4 2.0 3.0 3.6"

#: (model, task, variant) → head set, for the pretrained models of the paper.
PAPER_HEADS: dict[tuple[str, str, str], frozenset[Head]] = {
    ("gpt2-small", "ioi", "paper"): _parse(_IOI),
    ("gpt2-small", "ioi", "authors"): _parse(_IOI.replace("9.0", "11.3")),
    ("gpt2-small", "greater-than", "paper"): _parse(_GREATER_THAN),
    ("gpt2-small", "greater-than", "authors"): _parse(_GREATER_THAN),
    ("attn-only-4l", "docstring", "paper"): _parse(_DOCSTRING),
    ("attn-only-4l", "docstring", "authors"): _parse(_DOCSTRING.replace("1.2", "1.0")),
}

VARIANTS = ("paper", "authors")


def ground_truth_heads(model_name: str, task_name: str, variant: str = "paper") -> frozenset[Head]:
    """The known circuit heads of ``task_name`` in ``model_name``, as (layer, head) pairs.

    Pretrained models (``gpt2-small``, ``attn-only-4l``, or any of their aliases such as
    ``gpt2``) use the papers' sets; a shipped toy model reads
    ``saekit/zoo/<model>/ground_truth.json``, and a zoo-layout folder (what ``saekit zoo train
    --out`` writes) its own ``ground_truth.json`` (both variants give its one set).
    """
    if variant not in VARIANTS:
        raise TaskError(f"Unknown ground-truth variant {variant!r}; use one of {VARIANTS}.")
    from saekit.models import canonical_model_name
    from saekit.zoo import toy_model_names

    path = _zoo_ground_truth_file(model_name)
    if path is not None:
        return frozenset((int(layer), int(head)) for layer, head in _zoo_task_entry(model_name, path, task_name)["heads"])
    model_name = canonical_model_name(model_name)
    key = (model_name, task_name, variant)
    if key not in PAPER_HEADS:
        known = sorted({f"{m}/{t}" for m, t, _ in PAPER_HEADS})
        toys = [f"{name}/<task>" for name in toy_model_names()]
        raise TaskError(
            f"No ground truth for task {task_name!r} in model {model_name!r}. Known: "
            f"{', '.join(known + toys)}. For another model, pass your own head set "
            f"(e.g. from saekit.ablation.head_patching_effects)."
        )
    return PAPER_HEADS[key]


def ground_truth_roles(model_name: str, task_name: str) -> dict[Head, str]:
    """Each known circuit head's role, where the model's ground truth records one.

    A test-bed model's ``ground_truth.json`` gives ``"roles"`` beside ``"heads"`` (one per head);
    models without roles (toy-4l, the papers' sets) give an empty dict, and figures then title
    heads "L.H" alone. Unknown (model, task) pairs raise as in ``ground_truth_heads``.
    """
    ground_truth_heads(model_name, task_name)  # raises for a pair with no ground truth
    path = _zoo_ground_truth_file(model_name)
    if path is None:
        return {}
    entry = _zoo_task_entry(model_name, path, task_name)
    roles = entry.get("roles", [])
    if roles and len(roles) != len(entry["heads"]):
        raise TaskError(
            f"Model {model_name!r}, task {task_name!r}: {path} lists {len(entry['heads'])} heads but "
            f"{len(roles)} roles; give one role per head (or none). Save the model again."
        )
    return {(int(layer), int(head)): str(role) for (layer, head), role in zip(entry["heads"], roles)}


def _zoo_ground_truth_file(model_name: str | Path) -> Path | None:
    """The ``ground_truth.json`` of a shipped toy model or of a zoo-layout folder (None for others)."""
    from saekit.zoo import toy_model_dir, toy_model_names

    if str(model_name) in toy_model_names():
        path = toy_model_dir(str(model_name)) / "ground_truth.json"
        if not path.is_file():
            raise TaskError(f"Toy model {str(model_name)!r} ships no ground_truth.json at {path}.")
        return path
    path = Path(model_name) / "ground_truth.json"
    return path if path.is_file() else None


def _zoo_task_entry(model_name: str | Path, path: Path, task_name: str) -> dict[str, Any]:
    tasks = json.loads(path.read_text())["tasks"]
    if task_name not in tasks:
        raise TaskError(
            f"Model {str(model_name)!r} has no ground truth for task {task_name!r} in {path}; it has "
            f"{', '.join(sorted(tasks))}."
        )
    return tasks[task_name]


def heads_to_mask(heads: Iterable[Head | str], n_layers: int, n_heads: int) -> Bool[Tensor, "n_layers n_heads"]:
    """A boolean (layer, head) mask of a head set ((layer, head) pairs or "L.H" strings),
    checking that every head is in range."""
    if isinstance(heads, (str, bytes)) or not isinstance(heads, Iterable):
        raise HeadSetError(f"Cannot read heads from {heads!r}; give {HEAD_FORMATS}.")
    mask = torch.zeros(n_layers, n_heads, dtype=torch.bool)
    for item in heads:
        layer, head = parse_head(item)
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise HeadSetError(
                f"Head ({layer}, {head}) is outside a model of {n_layers} layers x {n_heads} "
                f"heads; is the head set meant for another model?"
            )
        mask[layer, head] = True
    return mask
