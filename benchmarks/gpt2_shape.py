"""What each stage costs at GPT-2-small shape, as multiples of a bare forward pass.

A random-init GPT-2-small-shaped model (12 layers x 12 heads, d_model 768, the real GPT-2
tokenizer; random weights time exactly like trained ones) runs IOI prompts. Every stage is
timed in the same process as a bare forward pass over the same prompts (full logits at every
position, what ``model(tokens)`` returns) and printed as a ratio to it, so the figures hold on
any machine. From the per-prompt costs it estimates the wall time of notebooks 00 and 05 at
``MODEL = "gpt2-small"`` with their default parameters. Not a test: run it by hand::

    HF_HUB_OFFLINE=1 python benchmarks/gpt2_shape.py            # a few minutes
    HF_HUB_OFFLINE=1 python benchmarks/gpt2_shape.py --full     # also all 144 heads patched and ACDC

By default per-head activation patching is timed on a sample of heads (the marginal cost of
``--sample-heads`` more patched heads) and ACDC estimated from it (each ACDC step is one
metric-only ablated pass, as a patched head is); ``--full`` runs both over every head.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from saekit.testing import GPT2_SMALL_SHAPE, save_random_gpt2, write_gpt2_tokenizer

#: Notebook defaults (notebooks/source/00_quickstart.py, 05_ablation_validation.py).
NB00_PAIRS, NB05_PAIRS, NB05_EXPLORE_PAIRS = 250, 100, 32
N_RANDOM, CURVE_POINTS = 5, 9


def timed(run: Callable[[], object]) -> tuple[float, object]:
    """CPU seconds of this process (not wall time: on a shared machine that includes waiting
    for a core) and the result. With one torch thread they equal the wall time on an idle
    machine."""
    started = time.process_time()
    result = run()
    return time.process_time() - started, result


def fastest(run: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` timings."""
    return min(timed(run)[0] for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-pairs", type=int, default=16, help="IOI pairs every stage runs on (default 16)")
    parser.add_argument("--sample-heads", type=int, default=12,
                        help="heads whose patching is timed when not --full (default 12)")
    parser.add_argument("--full", action="store_true", help="patch all heads and run ACDC for real")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timings of each pass-level measurement; the shortest counts (default 2)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads mostly spin)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from saekit import load_model
    from saekit.ablation import ablation_runs, capture_head_z, circuit_table, random_head_masks
    from saekit.activations import head_activations
    from saekit.baselines import acdc_scores, activation_patching_scores, attribution_patching_scores, hisp_scores
    from saekit.discovery import discover, paper_config
    from saekit.tasks import make_task
    from saekit.tasks.ground_truth import ground_truth_heads

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = write_gpt2_tokenizer(Path(scratch) / "tokenizer")
        folder = save_random_gpt2(Path(scratch) / "gpt2-small-random", tokenizer, **GPT2_SMALL_SHAPE)
        load_seconds, model = timed(lambda: load_model(folder, device=args.device))
    task_seconds, task = timed(lambda: make_task("ioi", model, n_pairs=args.n_pairs))
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    truth = ground_truth_heads("gpt2-small", "ioi")
    batch = args.batch_size
    print(f"random-init GPT-2 small shape ({n_layers} x {n_heads} heads, d_model {model.cfg.d_model}); "
          f"IOI, {task.n_pairs} pairs of {int(task.lengths.min())}-{int(task.lengths.max())} tokens; "
          f"batch {batch}; {torch.get_num_threads()} thread(s), device {args.device}")

    def bare() -> None:
        with torch.no_grad():
            for start in range(0, task.n_pairs, batch):
                model(task.subset(slice(start, start + batch)).positive_tokens.to(args.device))

    bare()  # warm-up, outside every timing
    forward = fastest(bare, args.repeats + 1)
    rows: dict[str, float] = {}  # stage -> CPU seconds at n_pairs
    rows["harvest (head activations, positives + negatives)"] = fastest(
        lambda: head_activations(model, task, batch_size=batch, progress=False), args.repeats)
    discover_seconds, found = timed(
        lambda: discover(model, task, paper_config("ioi", batch_size=batch), seeds=[0], progress=False))
    rows["discover, one seed (harvest + SAE + scoring)"] = discover_seconds
    rows["circuit table (found, 5 random, known; mean ablation)"] = timed(
        lambda: circuit_table(model, task, found.mean_scores, ground_truth=truth, n_random=N_RANDOM, batch_size=batch))[0]

    # Marginal costs: the same call with more circuits, so shared passes (clean run, means) cancel.
    few, more = random_head_masks(n_layers, n_heads, len(truth), range(1)), random_head_masks(n_layers, n_heads, len(truth), range(5))
    mean_pass = (fastest(lambda: ablation_runs(model, task, more, batch_size=batch), args.repeats)
                 - fastest(lambda: ablation_runs(model, task, few, batch_size=batch), args.repeats)) / 4
    rows["one mean-ablation pass (metric + KL)"] = mean_pass
    patch = ~torch.eye(n_layers * n_heads, dtype=torch.bool).view(-1, n_layers, n_heads)
    spread = torch.linspace(0, n_layers * n_heads - 1, 4 + args.sample_heads).long()
    head_pass = (fastest(lambda: ablation_runs(model, task, patch[spread], "resample", batch_size=batch, kl=False), args.repeats)
                 - fastest(lambda: ablation_runs(model, task, patch[spread[:4]], "resample", batch_size=batch, kl=False), args.repeats)
                 ) / args.sample_heads
    rows["activation patching, per head"] = head_pass
    z_pass = fastest(lambda: [capture_head_z(model, task.subset(slice(s, s + batch)).negative_tokens)
                              for s in range(0, task.n_pairs, batch)], args.repeats)
    rows["head z of the negatives (means, resampling)"] = z_pass
    rows["attribution patching"] = timed(lambda: attribution_patching_scores(model, task, batch_size=batch))[0]
    rows["HISP"] = timed(lambda: hisp_scores(model, task, batch_size=batch))[0]
    n_total = n_layers * n_heads
    acdc_estimate = n_total * head_pass + 4 * mean_pass + z_pass
    if args.full:
        rows["activation patching, all heads"] = timed(lambda: activation_patching_scores(model, task, batch_size=batch))[0]
        rows["ACDC (threshold 0.02)"] = timed(lambda: acdc_scores(model, task, batch_size=batch))[0]
    else:
        rows["ACDC (threshold 0.02), estimated: 144 head steps + ends"] = acdc_estimate

    print(f"\nbare forward pass over the {task.n_pairs} positives: {forward:.2f} CPU s\n")
    print("| stage | CPU seconds | ratio to a bare forward |\n|---|---|---|")
    for stage, seconds in rows.items():
        print(f"| {stage} | {seconds:.2f} | {seconds / forward:.2f} |")

    # Notebook estimates: every pass costs its measured time per prompt times the prompts it runs on.
    per_prompt = {name: seconds / task.n_pairs for name, seconds in
                  {"kl": mean_pass, "metric": head_pass, "z": z_pass, "harvest": rows["harvest (head activations, positives + negatives)"],
                   "attribution": rows["attribution patching"], "hisp": rows["HISP"]}.items()}
    sae_fixed = discover_seconds - rows["harvest (head activations, positives + negatives)"]  # SAE, scoring

    def discover_at(pairs: int) -> float:
        return pairs * per_prompt["harvest"] + sae_fixed

    table_passes = (1 + N_RANDOM + 1 + 1 + 1) * per_prompt["kl"] + per_prompt["z"]  # circuits, empty, clean; means
    nb00 = load_seconds + task_seconds * NB00_PAIRS / task.n_pairs + discover_at(NB00_PAIRS) + NB00_PAIRS * table_passes
    # Each order's first point (no head) and last (every head) are one circuit each: run once.
    curve_circuits = (CURVE_POINTS - 2) * (1 + N_RANDOM) + 2
    evaluate = 3 * per_prompt["kl"]  # circuit, empty, clean
    nb05_cells = {
        "load, prompts, discover": load_seconds + task_seconds * NB05_PAIRS / task.n_pairs + discover_at(NB05_PAIRS),
        "three ablations (mean, resample, zero)": NB05_PAIRS * (3 * evaluate + 2 * per_prompt["z"]),
        "circuit table": NB05_PAIRS * table_passes,
        "faithfulness curves": NB05_PAIRS * ((curve_circuits + 1) * per_prompt["metric"] + per_prompt["z"]),
        "threshold explorer (static view)": NB05_EXPLORE_PAIRS * (evaluate + per_prompt["z"]),
        "activation patching": NB05_PAIRS * ((n_total + 1) * per_prompt["metric"] + per_prompt["z"]),
        "attribution patching, HISP": NB05_PAIRS * (per_prompt["attribution"] + per_prompt["hisp"]),
        "ACDC (its circuit reused by the last cell)": NB05_PAIRS * (n_total * per_prompt["metric"] + 4 * per_prompt["kl"] + per_prompt["z"]),
    }
    print("\nEstimated notebook time at gpt2-small (defaults; CPU time, the wall time on an idle machine):")
    print(f"  00_quickstart ({NB00_PAIRS} pairs): {nb00 / 60:.1f} min")
    print(f"  05_ablation_validation ({NB05_PAIRS} pairs): {sum(nb05_cells.values()) / 60:.1f} min")
    for cell, seconds in nb05_cells.items():
        print(f"    {cell}: {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
