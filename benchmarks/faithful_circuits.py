"""How many heads a faithful circuit needs on every toy task, against the known circuit's size.

Three searches that use ablation itself rather than a ranking, all under mean ablation:

- ACDC over heads (:func:`saekit.ablation.prune_heads`) at a few thresholds τ: the size and
  faithfulness of the circuit it keeps, and how many known-circuit heads are in it;
- backward elimination: from the full model, repeatedly ablate the head whose loss keeps
  faithfulness highest. Its faithfulness at the known circuit's size bounds, from below, what
  the best circuit of that size reaches; a found circuit of that size (``saekit validate`` with
  k = the known circuit's size) is one such circuit;
- where there are at most ``--exhaustive-limit`` circuits of the known circuit's size, every one
  of them: the best is the most any method's circuit of that size can reach (a bound from above).

::

    HF_HUB_OFFLINE=1 python benchmarks/faithful_circuits.py --model toy-4l --n-pairs 100
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from saekit.tasks import TASK_NAMES

THRESHOLDS = (0.005, 0.02, 0.05)


def circuit_faithfulness(model, task, keep, kind: str):
    """Faithfulness of each circuit, one per row of ``keep`` [n_circuits, n_layers * n_heads]."""
    from saekit.ablation import ablation_runs, faithfulness, model_shape

    n_layers, n_heads = model_shape(model)
    with_empty = torch.cat([keep, torch.zeros(1, keep.shape[1], dtype=torch.bool)])  # the 0 of the scale
    runs = ablation_runs(model, task, with_empty.view(-1, n_layers, n_heads), kind, batch_size=2048)
    metric = runs.metric.mean(1)
    return faithfulness(metric[:-1], float(runs.clean_metric.mean()), float(metric[-1]))


def backward_elimination(model, task, kind: str) -> list[float]:
    """Faithfulness of the best circuit found with n heads kept, for n = all heads .. 1."""
    from saekit.ablation import model_shape

    n_layers, n_heads = model_shape(model)
    kept = torch.ones(n_layers * n_heads, dtype=torch.bool)
    best = {int(kept.sum()): 1.0}
    while kept.sum() > 1:
        candidates = torch.nonzero(kept).flatten()
        circuits = kept.repeat(len(candidates), 1)
        circuits[torch.arange(len(candidates)), candidates] = False
        scores = circuit_faithfulness(model, task, circuits, kind)
        choice = int(scores.argmax())
        kept[candidates[choice]] = False
        best[int(kept.sum())] = float(scores[choice])
    return [best[n] for n in sorted(best)]


def best_of_size(model, task, size: int, kind: str) -> tuple[float, list[tuple[int, int]]]:
    """Faithfulness of every circuit of ``size`` heads: the best one and its heads."""
    from saekit.ablation import heads_from_mask, model_shape

    n_layers, n_heads = model_shape(model)
    members = torch.combinations(torch.arange(n_layers * n_heads), size)
    circuits = torch.zeros(len(members), n_layers * n_heads, dtype=torch.bool)
    circuits[torch.arange(len(members))[:, None], members] = True
    scores = circuit_faithfulness(model, task, circuits, kind)
    choice = int(scores.argmax())
    return float(scores[choice]), heads_from_mask(circuits[choice].view(n_layers, n_heads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy-4l")
    parser.add_argument("--n-pairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--exhaustive-limit", type=int, default=5000,
                        help="search every circuit of the known size when there are at most this many")
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
        n_circuits = math.comb(len(curve), len(truth))
        best = best_of_size(model, task, len(truth), "mean") if n_circuits <= args.exhaustive_limit else None
        elimination[name] = (len(truth), curve[len(truth) - 1], smallest, n_circuits, best)
    print(f"\n{'task':<13} {'known':>5} {'elimination at that size':>24} {'fewest heads for 0.8':>20} "
          f"{'circuits of that size':>21} {'best of them':>12}")
    for name, (size, at_size, smallest, n_circuits, best) in elimination.items():
        exhaustive = f"{best[0]:>12.2f}  {best[1]}" if best else f"{'not searched':>12}"
        print(f"{name:<13} {size:>5} {at_size:>24.2f} {smallest:>20} {n_circuits:>21} {exhaustive}")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
