"""Compare the SAE architectures (saekit.sae.ARCHITECTURES) on every toy task.

For each task and architecture: node ROC AUC against the task's ground-truth heads, mean ± sd
over seeds (each seed draws new SAE training examples and a new SAE initialisation, as in the
paper), and the SAE's explained variance, L0, dead-latent fraction and training seconds per
seed (all on its training samples, averaged over seeds). Head activations are taken once per
task and shared by all architectures, so the architectures see identical data. Prints a
markdown table and a sentence per task on the winner, and saves the table and a figure::

    HF_HUB_OFFLINE=1 python benchmarks/sae_architectures.py --model toy-4l --seeds 10

Every architecture runs at its defaults (SAEConfig) with the paper's per-task L1 coefficient.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from saekit.tasks import TASK_NAMES
HEADER = ("| task | architecture | node ROC AUC | explained variance | L0 | dead latents "
          "| train s / seed |\n|---|---|---|---|---|---|---|")


def run_task(model, model_name: str, task_name: str, architectures, seeds: int, n_pairs: int):
    """One row per architecture: AUC mean/sd and the seed-averaged SAE metrics."""
    from saekit.activations import head_activations
    from saekit.discovery import discover, paper_config
    from saekit.errors import TaskError
    from saekit.tasks import make_task
    from saekit.tasks.ground_truth import ground_truth_heads

    task = make_task(task_name, model, n_pairs=n_pairs)
    try:
        ground_truth = ground_truth_heads(model_name, task_name)
    except TaskError as err:
        print(f"{task_name}: no ground truth ({err}); AUC left out")
        ground_truth = None
    config = paper_config(task_name)
    activations = head_activations(model, task, config.activation, config.reduction,
                                   config.batch_size, progress=False)
    rows = []
    for architecture in architectures:
        result = discover(model, task, paper_config(task_name, architecture=architecture),
                          seeds=range(seeds), ground_truth=ground_truth,
                          activations=activations, progress=False)
        metrics = {key: float(np.mean([m[key] for m in result.sae_metrics]))
                   for key in ("explained_variance", "l0", "dead_fraction")}
        rows.append({
            "task": task_name, "architecture": architecture,
            "auc_mean": result.auc_mean, "auc_std": result.auc_std,
            "seconds_per_seed": result.seconds["sae"] / seeds, **metrics,
        })
        auc = "n/a" if result.auc_mean is None else f"{result.auc_mean:.3f} ± {result.auc_std:.3f}"
        print(f"  {task_name:13s} {architecture:15s} AUC {auc}", flush=True)
    return rows


def markdown_table(rows) -> str:
    lines = [HEADER]
    for row in rows:
        auc = "n/a" if row["auc_mean"] is None else f"{row['auc_mean']:.3f} ± {row['auc_std']:.3f}"
        lines.append(
            f"| {row['task']} | {row['architecture']} | {auc} | {row['explained_variance']:.3f} "
            f"| {row['l0']:.1f} | {row['dead_fraction']:.2f} | {row['seconds_per_seed']:.2f} |"
        )
    return "\n".join(lines)


def winners(rows) -> str:
    """One sentence per task: the best architecture and its margin over the paper's relu."""
    sentences = []
    for task in dict.fromkeys(row["task"] for row in rows):
        scored = [row for row in rows if row["task"] == task and row["auc_mean"] is not None]
        if not scored:
            continue
        best = max(scored, key=lambda row: row["auc_mean"])
        relu = next((row for row in scored if row["architecture"] == "relu"), None)
        margin = "" if relu is None else (
            f", {best['auc_mean'] - relu['auc_mean']:+.3f} over relu ({relu['auc_mean']:.3f})")
        sentences.append(f"- **{task}**: {best['architecture']} "
                         f"({best['auc_mean']:.3f} ± {best['auc_std']:.3f}{margin}).")
    return "\n".join(sentences)


def figure(rows, path: Path) -> None:
    """Grouped bars: node ROC AUC (± sd over seeds) per task, one bar per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(row["task"] for row in rows))
    architectures = list(dict.fromkeys(row["architecture"] for row in rows))
    width = 0.8 / len(architectures)
    fig, ax = plt.subplots(figsize=(2.2 * len(tasks) + 2, 4))
    for i, architecture in enumerate(architectures):
        picked = [next(r for r in rows if r["task"] == t and r["architecture"] == architecture)
                  for t in tasks]
        means = [r["auc_mean"] or 0.0 for r in picked]
        stds = [r["auc_std"] or 0.0 for r in picked]
        ax.bar(np.arange(len(tasks)) + (i - (len(architectures) - 1) / 2) * width, means, width,
               yerr=stds, capsize=2, label=architecture)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel("node ROC AUC (mean ± sd over seeds)")
    ax.set_ylim(0, 1.05)
    ax.legend(ncol=4, fontsize=8, loc="lower center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    from saekit import load_model
    from saekit.sae import ARCHITECTURES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy-4l")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES))
    parser.add_argument("--architectures", default=",".join(sorted(ARCHITECTURES)))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n-pairs", type=int, default=250, help="pairs per task (paper: 250)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more mostly spin)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="folder for sae_architectures.md and .png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    model = load_model(args.model)
    rows = []
    for task_name in args.tasks.split(","):
        rows += run_task(model, args.model, task_name, args.architectures.split(","),
                         args.seeds, args.n_pairs)
    table = markdown_table(rows)
    summary = winners(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sae_architectures.md").write_text(
        f"Model {args.model}, {args.seeds} seeds, {args.n_pairs} pairs per task.\n\n"
        f"{table}\n\nBest architecture per task:\n\n{summary}\n"
    )
    figure(rows, args.out / "sae_architectures.png")
    print(f"\n{table}\n\n{summary}\n\n({time.perf_counter() - started:.0f} s; table and figure "
          f"in {args.out})")


if __name__ == "__main__":
    main()
