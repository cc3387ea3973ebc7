"""``saekit validate`` (is the found circuit faithful?) and ``saekit compare`` (SAE vs baselines).

``validate`` prints the paper's table 4 for a model and task: the full model, every head
ablated, the ground-truth circuit, the circuit the SAE method finds, and random circuits of the
same size. ``compare`` ranks heads with the SAE method and every baseline of
`saekit.baselines.BASELINES` (four expensive ones, four trivial ones the method must beat)
and reports each one's ROC AUC against the ground truth and its wall time.
"""

from __future__ import annotations

import argparse

from saekit.cli import ground_truth_or_none, load_model_and_task, positive_int, print_json
from saekit.errors import TaskError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="toy model, TransformerLens name or folder")
    parser.add_argument("--task", required=True, help="ioi, greater-than, docstring or induction")
    parser.add_argument("--n-pairs", type=positive_int, default=250, metavar="N",
                        help="positive/negative pairs to generate (default 250)")
    parser.add_argument("--seeds", type=positive_int, default=1, metavar="K",
                        help="SAE seeds 0..K-1 whose scores are averaged (default 1)")
    parser.add_argument("--batch-size", type=positive_int, default=64, metavar="B",
                        help="sequences per forward pass (default 64)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def register(subparsers) -> None:
    validate = subparsers.add_parser(
        "validate", help="ablate everything outside the found circuit: is it faithful?"
    )
    _common(validate)
    choice = validate.add_mutually_exclusive_group()
    choice.add_argument("--top-k", type=positive_int, metavar="K",
                        help="found circuit = the K best heads (default: size of the ground truth)")
    choice.add_argument("--threshold", type=float, metavar="X",
                        help="found circuit = heads scoring at least X")
    validate.add_argument("--ablation", choices=("mean", "resample", "zero"), default="mean",
                          help="what replaces an ablated head's z (default mean; zero is off-distribution)")
    validate.add_argument("--n-random", type=positive_int, default=5, metavar="R",
                          help="random circuits drawn for the baseline row (default 5)")
    validate.set_defaults(handler=run_validate)

    compare = subparsers.add_parser(
        "compare", help="ROC AUC and time: SAE method vs activation/attribution patching, HISP, ACDC over heads "
                        "and the trivial baselines (head norm, mean difference, probe, layer index)"
    )
    _common(compare)
    compare.set_defaults(handler=run_compare)


def _discover(model, task, args: argparse.Namespace, ground_truth):
    from saekit.discovery import discover, paper_config

    config = paper_config(args.task, batch_size=args.batch_size)
    return discover(model, task, config, seeds=range(args.seeds), ground_truth=ground_truth,
                    progress=not args.json)


def run_validate(args: argparse.Namespace) -> int:
    import torch

    from saekit.ablation import circuit_table, found_circuit_mask, model_shape

    model, task = load_model_and_task(args)
    ground_truth = ground_truth_or_none(args, "no ground-truth row")
    if ground_truth is None and args.top_k is None and args.threshold is None:
        raise TaskError(f"No ground truth for {args.task} on {args.model}: pass --top-k or --threshold.")
    if args.top_k is not None:  # checked on placeholder scores now rather than after discovery
        found_circuit_mask(torch.zeros(model_shape(model)), top_k=args.top_k)
    scores = _discover(model, task, args, ground_truth=None).mean_scores
    table = circuit_table(
        model, task, scores, ground_truth=ground_truth, top_k=args.top_k, threshold=args.threshold,
        kind=args.ablation, n_random=args.n_random, batch_size=args.batch_size,
    )
    truth, found, random = table.ground_truth_circuit, table.found_circuit, table.random_circuit
    if args.json:
        print_json({
            "model": args.model,
            "task": args.task,
            "ablation": table.ablation,
            "metric_name": table.metric_name,
            "full": table.full,
            "ablated_all": table.ablated_all,
            "ground_truth_circuit": None if truth is None else {
                "n_heads": truth.n_heads, "metric": truth.metric, "faithfulness": truth.faithfulness,
            },
            "found_circuit": {
                "n_heads": found.n_heads, "heads": [list(head) for head in found.heads],
                "metric": found.metric, "faithfulness": found.faithfulness,
            },
            "random_circuit": {
                "n_heads": random.n_heads, "metric_mean": random.metric_mean,
                "metric_std": random.metric_std, "faithfulness_mean": random.faithfulness_mean,
            },
        })
        return 0
    print(f"{args.task} on {args.model}: {table.metric_name}, {table.ablation} ablation, "
          f"{task.n_pairs} pairs")
    print(f"{'circuit':<26} {'heads':>5} {'metric':>9} {'faithfulness':>13}")
    print(f"{'full model':<26} {'all':>5} {table.full:>9.3f} {1.0:>13.3f}")
    print(f"{'everything ablated':<26} {0:>5} {table.ablated_all:>9.3f} {0.0:>13.3f}")
    if truth is not None:
        print(f"{'ground truth':<26} {truth.n_heads:>5} {truth.metric:>9.3f} {truth.faithfulness:>13.3f}")
    print(f"{'found (SAE codes)':<26} {found.n_heads:>5} {found.metric:>9.3f} {found.faithfulness:>13.3f}")
    label = f"random (x{len(random.seeds)})"
    print(f"{label:<26} {random.n_heads:>5} {random.metric_mean:>9.3f} {random.faithfulness_mean:>13.3f}"
          f"  (metric sd {random.metric_std:.3f})")
    print("found heads: " + " ".join(f"{layer}.{head}" for layer, head in found.heads))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from saekit.baselines import BASELINES
    from saekit.scoring import roc_auc

    model, task = load_model_and_task(args)
    ground_truth = ground_truth_or_none(args, "", required=True)
    sae = _discover(model, task, args, ground_truth)
    rows = {"sae": {"auc": sae.auc_mean, "seconds": sae.seconds["total"]}}
    for name, method in BASELINES.items():
        result = method(model, task, batch_size=args.batch_size)
        rows[name] = {"auc": roc_auc(result.scores, ground_truth), "seconds": result.seconds}
    if args.json:
        print_json({"model": args.model, "task": args.task, "n_pairs": task.n_pairs, **rows})
        return 0
    print(f"{args.task} on {args.model}, {task.n_pairs} pairs, ROC AUC against the ground truth")
    print(f"{'method':<22} {'ROC AUC':>8} {'seconds':>8}")
    for name, row in rows.items():
        print(f"{name:<22} {row['auc']:>8.3f} {row['seconds']:>8.2f}")
    return 0
