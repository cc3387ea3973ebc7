"""``saekit diagnose``: can SAE codes find this task's circuit in this model? (no SAE trained)"""

from __future__ import annotations

import argparse

from saekit.cli import ground_truth_or_none, load_model_and_task, positive_int, print_json, set_threads


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "diagnose", help="premise check: which heads carry class information, and can argmax codes see it?"
    )
    parser.add_argument("--model", required=True, help="toy model, TransformerLens name or folder")
    parser.add_argument("--task", required=True, help="ioi, greater-than, docstring or induction")
    parser.add_argument("--n-pairs", type=positive_int, default=250, metavar="N",
                        help="positive/negative pairs to generate (default 250)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe's folds (default 0)")
    parser.add_argument("--activation", choices=("result", "z"), default="result")
    parser.add_argument("--reduction", choices=("mean", "last", "mean_no_bos"), default="mean")
    parser.add_argument("--figure", metavar="PATH", default=None,
                        help="also save the figure (d′ vs probe accuracy per head) to PATH")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N", help="CPU threads for torch (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    from saekit.diagnose import INFORMATIVE_PROBE_ACCURACY, TOP_FRACTION, diagnose
    from saekit.scoring import ranked_heads

    model, task = load_model_and_task(args)
    ground_truth = ground_truth_or_none(args, "the verdict only counts heads")
    result = diagnose(model, task, ground_truth, activation=args.activation, reduction=args.reduction,
                      seed=args.seed, progress=not args.json)
    if args.figure is not None:
        from saekit.viz import plot_premise

        plot_premise(result, title=f"{args.task} on {args.model}").figure.savefig(args.figure, dpi=150)
    if args.json:
        print_json({"model": args.model, "task": args.task, "n_pairs": task.n_pairs, **result.to_dict()})
        return 0
    truth = ground_truth or frozenset()
    print(f"{args.task} on {args.model}: class information per head, {task.n_pairs} pairs, highest d′ first")
    print(f"{'head':>6}  {'d′':>6}  {'probe':>5}  {'cos μ±':>7}  {'|μ+|/|μ-|':>9}  {'size-only':>9}  circuit")
    for layer, head in ranked_heads(result.d_prime):
        print(f"{f'{layer}.{head}':>6}  {float(result.d_prime[layer, head]):>6.2f}  "
              f"{float(result.probe_accuracy[layer, head]):>5.2f}  {float(result.cosine[layer, head]):>7.3f}  "
              f"{float(result.norm_ratio[layer, head]):>9.2f}  {'yes' if result.size_only[layer, head] else '':>9}  "
              f"{'yes' if (layer, head) in truth else ''}")
    print(f"heads with probe accuracy >= {INFORMATIVE_PROBE_ACCURACY}: {result.n_informative} of "
          f"{result.n_heads_total}; top {TOP_FRACTION:.0%} of heads hold {result.top_share:.0%} of the "
          f"total d′ (spread over about {result.effective_heads:.1f} heads)")
    if result.auc_d_prime is not None:
        print(f"ROC AUC vs ground truth: d′ {result.auc_d_prime:.3f}, probe {result.auc_probe:.3f}")
    print(f"verdict: {result.verdict}")
    print(f"time: {result.seconds:.2f} s")
    return 0
