"""``saekit discover``: score every attention head of a model on a task, and rank them."""

from __future__ import annotations

import argparse

from saekit.cli import ground_truth_or_none, load_model_and_task, positive_int, print_json, set_threads


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "discover", help="find a task's circuit heads with SAE codes (O'Neill & Bui 2024)"
    )
    parser.add_argument("--model", required=True, help="toy model, TransformerLens name or folder")
    parser.add_argument("--task", required=True, help="ioi, greater-than, docstring or induction")
    parser.add_argument("--seeds", type=positive_int, default=1, metavar="K", help="run seeds 0..K-1 (default 1)")
    parser.add_argument("--sae-examples", type=positive_int, default=10, metavar="N",
                        help="examples the SAE is trained on (default 10, the paper's)")
    parser.add_argument("--count-examples", type=positive_int, default=None, metavar="N",
                        help="pairs whose codes are counted (default: all)")
    parser.add_argument("--n-pairs", type=positive_int, default=250, metavar="N",
                        help="positive/negative pairs to generate (default 250)")
    # Choices are spelled out so that parsing loads no torch; tests/test_discovery.py keeps them
    # equal to the library's names.
    parser.add_argument("--score", choices=("node", "node_normalised", "edge"), default="node")
    parser.add_argument("--sae", default="relu", metavar="ARCH", help="SAE architecture (default relu)")
    parser.add_argument("--l1", type=float, default=None,
                        help="L1 coefficient (default: the paper's, 0.05 docstring, else 0.02)")
    parser.add_argument("--sae-steps", type=positive_int, default=None, metavar="N",
                        help="SAE training steps (default 500, the paper's)")
    parser.add_argument("--code-kind", choices=("argmax", "argmax_level"), default="argmax",
                        help="argmax: the strongest latent (the paper's); argmax_level: also its "
                             "activation level, so a change of size alone changes the code")
    parser.add_argument("--code-levels", type=int, default=4, metavar="N",
                        help="activation levels per latent for --code-kind argmax_level (default 4)")
    parser.add_argument("--activation", choices=("result", "z"), default="result")
    parser.add_argument("--reduction", choices=("mean", "last", "mean_no_bos"), default="mean")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N",
                        help="CPU threads for torch (default 1: the SAE's small matrices run "
                             "fastest on one, and several threads stall on a busy machine)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    set_threads(args.threads)
    from saekit.discovery import discover, paper_config

    overrides = {} if args.l1 is None else {"l1_coefficient": args.l1}
    if args.sae_steps is not None:
        overrides["steps"] = args.sae_steps
    config = paper_config(
        args.task, architecture=args.sae, sae_examples=args.sae_examples,
        count_examples=args.count_examples, score=args.score, activation=args.activation,
        reduction=args.reduction, code_kind=args.code_kind, code_levels=args.code_levels, **overrides,
    )
    model, task = load_model_and_task(args)
    ground_truth = ground_truth_or_none(args, "no ROC AUC")
    result = discover(model, task, config, seeds=range(args.seeds), ground_truth=ground_truth,
                      progress=not args.json)
    mean_scores = result.mean_scores
    if args.json:
        summary = result.to_dict()
        print_json({
            "model": args.model,
            "task": args.task,
            "n_heads": mean_scores.numel(),
            "seeds": summary["seeds"],
            "auc": summary["auc"],
            "scores": mean_scores.tolist(),
            "ground_truth": summary["ground_truth"],
            "seconds": summary["seconds"],
        })
        return 0
    truth = ground_truth or frozenset()
    spread = result.scores.std(0) if len(result.seeds) > 1 else torch.zeros_like(mean_scores)
    print(f"{args.task} on {args.model}: {config.score} scores, {len(result.seeds)} seed(s)")
    print(f"{'rank':>4}  {'head':>6}  {'score':>8}  {'± sd':>6}  circuit")
    for rank, (layer, head) in enumerate(result.ranked_heads, start=1):
        marker = "yes" if (layer, head) in truth else ""
        print(f"{rank:>4}  {f'{layer}.{head}':>6}  {float(mean_scores[layer, head]):>8.3f}  "
              f"{float(spread[layer, head]):>6.3f}  {marker}")
    if result.auc_mean is not None:
        print(f"ROC AUC vs ground truth: {result.auc_mean:.3f} ± {result.auc_std:.3f}")
    times = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in result.seconds.items())
    print(f"time: {times}")
    return 0
