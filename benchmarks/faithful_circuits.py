"""How many heads a faithful circuit needs on every toy task, against the known circuit's size.

Two searches that use ablation itself rather than a ranking, both under mean ablation:

- ACDC over heads (:func:`saekit.ablation.prune_heads`) at a few thresholds τ: the size and
  faithfulness of the circuit it keeps, and how many known-circuit heads are in it;
- backward elimination: from the full model, repeatedly ablate the head whose loss keeps
  faithfulness highest. Its faithfulness at the known circuit's size bounds, from below, what
  the best circuit of that size reaches; a found circuit of that size (``saekit validate`` with
  k = the known circuit's size) is one such circuit.

::

    HF_HUB_OFFLINE=1 python benchmarks/faithful_circuits.py --model toy-4l --n-pairs 100
"""

from __future__ import annotations

import argparse
import time

import torch

from saekit.tasks import TASK_NAMES
THRESHOLDS = (0.005, 0.02, 0.05)


def backward_elimination(model, task, kind: str) -> list[float]:
    """Faithfulness of the best circuit found with n heads kept, for n = all heads .. 1."""
    from saekit.ablation import ablation_runs, faithfulness, model_shape

    n_layers, n_heads = model_shape(model)
    kept = torch.ones(n_layers * n_heads, dtype=torch.bool)
    best = {int(kept.sum()): 1.0}
    while kept.sum() > 1:
        candidates = torch.nonzero(kept).flatten()
        circuits = kept.repeat(len(candidates) + 1, 1)
        circuits[0] = False  # everything ablated: the 0 of the faithfulness scale
        circuits[torch.arange(1, len(candidates) + 1), candidates] = False
        runs = ablation_runs(model, task, circuits.view(-1, n_layers, n_heads), kind, batch_size=1024)
        metric = runs.metric.mean(1)
        scores = [faithfulness(float(m), float(runs.clean_metric.mean()), float(metric[0])) for m in metric[1:]]
        choice = max(range(len(scores)), key=scores.__getitem__)
        kept[candidates[choice]] = False
        best[int(kept.sum())] = scores[choice]
    return [best[n] for n in sorted(best)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy-4l")
    parser.add_argument("--n-pairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from saekit import load_model
    from saekit.ablation import prune_heads
    from saekit.tasks import make_task
    from saekit.tasks.ground_truth import ground_truth_heads

    model = load_model(args.model)
    started = time.perf_counter()
    print(f"{args.model}, {args.n_pairs} pairs (seed {args.seed}), mean ablation\n")
    print(f"{'task':<13} {'known':>5} {'τ':>6} {'ACDC heads':>10} {'faithfulness':>12} {'known kept':>10}")
    elimination = {}
    for name in TASK_NAMES:
        task = make_task(name, model, n_pairs=args.n_pairs, seed=args.seed)
        truth = ground_truth_heads(args.model, name)
        for threshold in THRESHOLDS:
            circuit = prune_heads(model, task, threshold).circuit
            print(f"{name:<13} {len(truth):>5} {threshold:>6} {circuit.n_heads:>10} {circuit.faithfulness:>12.2f} "
                  f"{len(truth & set(circuit.heads)):>10}")
        curve = backward_elimination(model, task, "mean")
        smallest = next(n for n, value in enumerate(curve, start=1) if value >= 0.8)
        elimination[name] = (len(truth), curve[len(truth) - 1], smallest)
    print(f"\n{'task':<13} {'known':>5} {'best found at that size':>23} {'fewest heads for 0.8':>20}")
    for name, (size, at_size, smallest) in elimination.items():
        print(f"{name:<13} {size:>5} {at_size:>23.2f} {smallest:>20}")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
