"""Node ROC AUC of the SAE method on every toy task under one change of the paper's settings at a time.

The choices are the ones a researcher turns when the method falls short: the activation
(``result`` = z · W_O, the paper's, or ``z``), the position reduction, the L1 coefficient λ
(× 0.25 and × 4 of the paper's per-task value), the dictionary size, the number of SAE
training examples and the normalised node score. Every variant runs the same seeds on the same
prompts (relu SAE); one row per variant, one column per task, mean ± sd over seeds::

    HF_HUB_OFFLINE=1 python benchmarks/discovery_choices.py --model toy-4l --seeds 10
"""

from __future__ import annotations

import argparse
import time

import torch

from saekit.tasks import TASK_NAMES
#: Variant name -> overrides of paper_config; "l1_scale" multiplies the paper's per-task λ.
VARIANTS: dict[str, dict] = {
    "paper": {},
    "activation z": {"activation": "z"},
    "reduction last": {"reduction": "last"},
    "reduction mean_no_bos": {"reduction": "mean_no_bos"},
    "λ × 0.25": {"l1_scale": 0.25},
    "λ × 4": {"l1_scale": 4.0},
    "d_sae 50": {"d_sae": 50},
    "sae_examples 50": {"sae_examples": 50},
    "score node_normalised": {"score": "node_normalised"},
}


def variant_auc(model, model_name: str, task, overrides: dict, seeds: int) -> tuple[float, float]:
    """Mean and sd over seeds of the node ROC AUC with the paper's config changed by ``overrides``."""
    from saekit.discovery import discover, paper_config
    from saekit.tasks.ground_truth import ground_truth_heads

    overrides = dict(overrides)
    scale = overrides.pop("l1_scale", None)
    if scale is not None:
        overrides["l1_coefficient"] = paper_config(task.name).sae.l1_coefficient * scale
    result = discover(model, task, paper_config(task.name, **overrides), seeds=range(seeds),
                      ground_truth=ground_truth_heads(model_name, task.name), progress=False)
    return result.auc_mean, result.auc_std


def main() -> None:
    from saekit.models import load_model
    from saekit.tasks import make_task

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy-4l")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n-pairs", type=int, default=250, help="pairs per task (paper: 250)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    started = time.perf_counter()
    model = load_model(args.model)
    tasks = [make_task(name, model, n_pairs=args.n_pairs) for name in args.tasks.split(",")]
    lines = ["| variant | " + " | ".join(task.name for task in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for name, overrides in VARIANTS.items():
        cells = []
        for task in tasks:
            mean, std = variant_auc(model, args.model, task, overrides, args.seeds)
            cells.append(f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    print(f"\n{args.model}, {args.seeds} seeds, {args.n_pairs} pairs per task, relu SAE\n")
    print("\n".join(lines))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
