"""mkdocs hook: draw the figures of docs/method.md from the shipped toy model (offline).

They are build outputs, kept out of the source tree: drawn into a cache folder (by default
``~/.cache/saekit/docs-figures``, or ``$SAEKIT_DOCS_FIGURES``) where missing or older than the
model, so they always show what the shipped model does and a rebuild does not retrain, and added
to the site as ``figures/*.png``. By hand: ``python docs/hooks/figures.py [FOLDER]``.
Writes scores.png (node scores with the known circuit outlined), codes.png (the code histogram of
the best-scoring head) and roc.png (ROC of the node score over five seeds).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("agg")

import torch  # noqa: E402

import saekit  # noqa: E402
from saekit.activations import head_activations  # noqa: E402
from saekit.codes import head_codes  # noqa: E402
from saekit.discovery import discover, paper_config  # noqa: E402
from saekit.sae import train_sae  # noqa: E402
from saekit.tasks import make_task  # noqa: E402
from saekit.tasks.ground_truth import ground_truth_heads  # noqa: E402
from saekit.viz import plot_code_histogram, plot_head_grid, plot_roc  # noqa: E402

FIGURES = Path(os.environ.get("SAEKIT_DOCS_FIGURES") or Path.home() / ".cache" / "saekit" / "docs-figures")
NAMES = ("scores.png", "codes.png", "roc.png")
MODEL, TASK = "toy-4l", "greater-than"


def main(folder: Path = FIGURES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model = saekit.load_model(MODEL)
    task = make_task(TASK, model, n_pairs=250, seed=0)
    truth = ground_truth_heads(MODEL, TASK)
    result = discover(model, task, paper_config(TASK), seeds=range(5), ground_truth=truth, progress=False)

    ax = plot_head_grid(result.scores[0], title=f"{TASK} on {MODEL}: node score |P \\ N| per head",
                        label="codes only on positives", highlight=truth, highlight_label="known circuit")
    ax.figure.savefig(folder / "scores.png", dpi=120)

    ax = plot_roc({f"seed {seed}": scores for seed, scores in zip(result.seeds, result.scores)}, truth,
                  title=f"{TASK} on {MODEL}: ROC of the node score")
    ax.figure.savefig(folder / "roc.png", dpi=120)

    activations = head_activations(model, task, progress=False)
    examples = torch.cat([activations.positive, activations.negative])
    chosen = torch.randperm(len(examples), generator=torch.Generator().manual_seed(0))[:10]
    sae = train_sae(examples[chosen].flatten(0, 1), paper_config(TASK).sae)
    best = result.ranked_heads[0]
    flat = best[0] * activations.n_heads + best[1]
    ax = plot_code_histogram(head_codes(sae, activations.positive)[:, flat], head_codes(sae, activations.negative)[:, flat],
                             title=f"head {best[0]}.{best[1]} on {TASK}")
    ax.figure.savefig(folder / "codes.png", dpi=120)


def on_files(files, config):
    """Draw the figures unless the cached ones are newer than the shipped model and its ground
    truth, and publish them as ``figures/<name>`` (nothing is written into docs/)."""
    from mkdocs.structure.files import File

    from saekit.zoo import toy_model_dir

    sources = [toy_model_dir(MODEL) / name for name in ("model.safetensors", "ground_truth.json")]
    newest_source = max(path.stat().st_mtime for path in sources)
    paths = [FIGURES / name for name in NAMES]
    if not all(path.is_file() and path.stat().st_mtime > newest_source for path in paths):
        main()
    for path in paths:
        files.append(File.generated(config, f"figures/{path.name}", abs_src_path=str(path)))
    return files


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FIGURES)
