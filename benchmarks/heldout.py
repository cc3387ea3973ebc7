"""Held-out evaluation of the SAE method's settings: choose on a development model, report on others.

1. **Which tasks count.** A (model, task) is scored only where the model's designated circuit is
   faithful under both mean and resample ablation of the other heads (at least
   ``--min-faithfulness``, the test-bed bar 0.9, where ablating every head removes most of the
   gap between positives and negatives: `saekit.zoo.card.faithful`): elsewhere the recorded
   circuit is not what the model uses, so a ranking scored against it measures nothing. This is
   decided from ablations alone, before any SAE is trained.
2. **Selection, on the development model only.** One pass of coordinate ascent over `SEARCH`,
   from the paper's configuration: each factor in turn takes the value with the highest mean node
   ROC AUC over the development model's counted tasks (mean over seeds), the other factors held
   at their current choice; a tie keeps the current value.
3. **Report, on the held-out models.** For every held-out model and task: the chosen setting and
   the paper's over the same seeds (same SAE seeds, same example draws, so each seed is a pair),
   mean ± sd, and the ROC AUC of every baseline of `saekit.baselines.BASELINES`. The chosen
   setting beats the paper's only if the paired differences over every counted (model, task,
   seed) have a positive mean and a one-sided Wilcoxon signed-rank p below 0.05.

Test-bed models are made by ``saekit zoo train --recipe testbed --seed S --out DIR`` (a variant
with ``--set FIELD=VALUE``, e.g. ``--set strict_toward_clean=true``)::

    HF_HUB_OFFLINE=1 python benchmarks/heldout.py --dev DIR0 --held-out DIR1 toy-4l --seeds 10
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import wilcoxon

from saekit._io import write_json
from saekit.activations import REDUCTIONS
from saekit.baselines import BASELINES
from saekit.discovery import paper_config
from saekit.sae import ARCHITECTURES
from saekit.zoo.card import FAITHFUL_BAR

#: The factors searched, in order, with their values (``l1_scale`` multiplies the paper's λ).
SEARCH: list[tuple[str, list[Any]]] = [
    ("activation", ["result", "z"]),
    ("reduction", list(REDUCTIONS)),
    ("architecture", list(ARCHITECTURES)),
    ("l1_scale", [0.25, 1.0, 4.0]),
    ("d_sae", [50, 200, 800]),
    ("code_kind", ["argmax", "argmax_level"]),
    ("score", ["node", "node_normalised", "edge"]),
]
_PAPER_CONFIG = paper_config("ioi")  # the factors below are the same for every task; λ is scaled per task
PAPER: dict[str, Any] = {
    "activation": _PAPER_CONFIG.activation, "reduction": _PAPER_CONFIG.reduction,
    "architecture": _PAPER_CONFIG.sae.architecture, "l1_scale": 1.0, "d_sae": _PAPER_CONFIG.sae.d_sae,
    "code_kind": _PAPER_CONFIG.code_kind, "score": _PAPER_CONFIG.score,
}


def config_for(task_name: str, setting: dict[str, Any]):
    """The DiscoveryConfig of ``setting`` (a value for every factor of `SEARCH`) on a task."""
    overrides = dict(setting)
    overrides["l1_coefficient"] = paper_config(task_name).sae.l1_coefficient * overrides.pop("l1_scale")
    return paper_config(task_name, **overrides)


class Model:
    """A model, its tasks, their ground truths, which tasks count, and cached head activations."""

    def __init__(self, name: str, n_pairs: int, min_faithfulness: float):
        from saekit.models import load_model
        from saekit.tasks import TASK_NAMES, make_task
        from saekit.tasks.ground_truth import ground_truth_heads
        from saekit.zoo.card import circuit_faithfulness, faithful

        self.name, self.model = name, load_model(name)
        self.tasks = {t: make_task(t, self.model, n_pairs=n_pairs) for t in TASK_NAMES}
        self.truth = {t: ground_truth_heads(name, t) for t in TASK_NAMES}
        measures = {t: circuit_faithfulness(self.model, task, sorted(self.truth[t])) for t, task in self.tasks.items()}
        self.faithfulness = {t: m["faithfulness"] for t, m in measures.items()}
        self.counted = [t for t, m in measures.items()
                        if all(faithful(m, kind, min_faithfulness) for kind in ("mean", "resample"))]
        self._activations: dict[tuple[str, str, str], Any] = {}
        self._aucs: dict[tuple, np.ndarray] = {}

    def aucs(self, task_name: str, setting: dict[str, Any], seeds: range) -> np.ndarray:
        """ROC AUC per seed of the SAE method with ``setting`` (its score included) on one task (memoised)."""
        from saekit.activations import head_activations
        from saekit.discovery import discover

        key = (task_name, tuple(sorted(setting.items())), tuple(seeds))
        if key not in self._aucs:
            config = config_for(task_name, setting)
            where = (task_name, config.activation, config.reduction)
            if where not in self._activations:
                self._activations[where] = head_activations(self.model, self.tasks[task_name], config.activation,
                                                             config.reduction, progress=False)
            result = discover(self.model, self.tasks[task_name], config, seeds=seeds,
                              ground_truth=self.truth[task_name], activations=self._activations[where], progress=False)
            self._aucs[key] = np.asarray(result.auc_per_seed)
        return self._aucs[key]

    def baseline_aucs(self, task_name: str) -> dict[str, float]:
        from saekit.scoring import roc_auc

        task, truth = self.tasks[task_name], self.truth[task_name]
        return {name: roc_auc(method(self.model, task).scores, truth) for name, method in BASELINES.items()}


def select(dev: Model, seeds: range) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Coordinate ascent over `SEARCH` on the development model's counted tasks; every trial logged."""

    def dev_score(setting: dict[str, Any]) -> float:
        return float(np.mean([dev.aucs(t, setting, seeds).mean() for t in dev.counted]))

    chosen, trials = dict(PAPER), []
    for factor, values in SEARCH:
        best_value, best = chosen[factor], dev_score(chosen)
        for value in values:
            trial = {**chosen, factor: value}
            score = dev_score(trial)
            trials.append({"factor": factor, "value": value, "dev_auc": score})
            print(f"  {factor} = {value}: {score:.3f}", flush=True)
            if score > best:
                best_value, best = value, score
        chosen[factor] = best_value
    return chosen, trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", required=True, help="the development model (name or zoo folder)")
    parser.add_argument("--held-out", nargs="+", required=True, help="held-out models (names or zoo folders)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n-pairs", type=int, default=250)
    parser.add_argument("--min-faithfulness", type=float, default=FAITHFUL_BAR)
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, seeds = time.perf_counter(), range(args.seeds)

    dev = Model(args.dev, args.n_pairs, args.min_faithfulness)
    if not dev.counted:
        raise SystemExit(f"No task of {args.dev} has a circuit faithful at {args.min_faithfulness}: nothing to select on.")
    print(f"selecting on {args.dev} ({', '.join(dev.counted)}):")
    chosen, trials = select(dev, seeds)
    changed = {k: v for k, v in chosen.items() if v != PAPER[k]}
    print(f"chosen: {changed or 'the paper setting (no change beat it)'}\n")

    rows, differences = [], []
    print("| model | role | task | circuit faithfulness (mean / resample) | counted | chosen | paper | chosen − paper | "
          + " | ".join(BASELINES) + " |\n|" + "---|" * (8 + len(BASELINES)))
    held_out = (("held out", Model(name, args.n_pairs, args.min_faithfulness)) for name in args.held_out)
    for role, model in itertools.chain([("development", dev)], held_out):
        for task_name in model.tasks:
            paper = model.aucs(task_name, PAPER, seeds)
            mine = model.aucs(task_name, chosen, seeds)
            baselines = model.baseline_aucs(task_name)
            counted, diff, faith = task_name in model.counted, mine - paper, model.faithfulness[task_name]
            if counted and role == "held out":
                differences.extend(diff)
            rows.append({"model": model.name, "role": role, "task": task_name, "faithfulness": faith,
                         "counted": counted, "chosen": mine.tolist(), "paper": paper.tolist(), "baselines": baselines})
            print(f"| {model.name} | {role} | {task_name} | {faith['mean']:.2f} / {faith['resample']:.2f} | "
                  f"{'yes' if counted else 'no'} | {mine.mean():.3f} ± {mine.std(ddof=1):.3f} | "
                  f"{paper.mean():.3f} ± {paper.std(ddof=1):.3f} | {diff.mean():+.3f} ± {diff.std(ddof=1):.3f} | "
                  + " | ".join(f"{baselines[b]:.3f}" for b in BASELINES) + " |", flush=True)

    summary = paired_summary(np.asarray(differences), bool(changed))
    print(f"\n{summary['sentence']}\n({time.perf_counter() - started:.0f} s, {args.seeds} seeds, {args.n_pairs} pairs)")
    if args.json:
        write_json(args.json, {"dev": args.dev, "held_out": args.held_out, "search": SEARCH, "paper": PAPER,
                               "chosen": chosen, "trials": trials, "rows": rows, "summary": summary,
                               "args": vars(args)})


def paired_summary(differences: np.ndarray, changed: bool) -> dict[str, Any]:
    """Mean of the chosen − paper AUC differences and a one-sided Wilcoxon signed-rank test."""
    if not changed:
        return {"beats": False, "sentence": "Selection kept the paper's setting: there is nothing to ship beside it."}
    if len(differences) == 0:
        return {"beats": False, "sentence": "No held-out task has a faithful circuit: nothing can be compared."}
    p = float(wilcoxon(differences, alternative="greater").pvalue) if np.any(differences) else 1.0
    mean = float(differences.mean())
    beats = mean > 0 and p < 0.05
    verb = "beats" if beats else "does not beat"
    return {"beats": beats, "mean_difference": mean, "p": p, "n": len(differences),
            "sentence": f"The chosen setting {verb} the paper's on the held-out models: mean paired difference "
                        f"{mean:+.3f} ROC AUC over {len(differences)} (model, task, seed) pairs, one-sided "
                        f"Wilcoxon p = {p:.3g}."}


if __name__ == "__main__":
    main()
