"""Induction's accuracy by how far back its answer is, on the card's pairs (`saekit zoo check`).

An induction positive is a sequence of distinct words followed by a stretch of it that starts
at a random word; the answer is the word after the stretch's earlier occurrence. How many
words before the last one the answer sits (its distance) runs from 1 ("… A B A" → B) to the
sequence's length less one. The card's accuracy is the mean over all distances; this says
which distances the misses are at. Per model:

- the accuracy on positives at each distance (and the pairs there), and at distances up to 2
  and from 3 on;
- at distance 1, the accuracy by the position of the last word, and where the circuit's
  previous-token head (``ground_truth.json``) attends from the last word: to the word before it
  (the answer) and to the word two before (the repeated word's first occurrence, the same
  token as the last), over the pairs answered right and wrong.

::

    python benchmarks/testbed_induction_distance.py MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import argparse

import torch
from jaxtyping import Int
from torch import Tensor

from saekit._tl import HookedModel
from saekit.models import load_model
from saekit.tasks import make_task
from saekit.tasks.ground_truth import ground_truth_roles
from saekit.tasks.toy import toy_pairs
from saekit.zoo.evaluate import EVAL_PAIRS, EVAL_SEED, accuracy, answer_logits

SHORT = 2  # distances up to this one are "short"


def answer_distances() -> Int[Tensor, " n_pairs"]:
    """Per card pair, how many words before the positive's last word its answer is (every word
    of the test-bed vocabulary is one token, and a sequence's words are distinct)."""
    distances = []
    for pair in toy_pairs("induction", EVAL_PAIRS, EVAL_SEED):
        words = pair.positive.split()
        distances.append(len(words) - 1 - words.index(pair.answers[0]))
    return torch.tensor(distances)


@torch.no_grad()
def report_distances(model: HookedModel, roles: dict[tuple[int, int], str], distances: Int[Tensor, " n_pairs"]) -> None:
    """Print one model's accuracy by distance, and its distance-1 pairs by position and by where
    the head of ``roles`` (its induction ground truth) with the previous-token role attends."""
    task = make_task("induction", model.tokenizer, EVAL_PAIRS, EVAL_SEED)
    right = accuracy(task, answer_logits(model, task, "positive")).bool()
    by_distance = "  ".join(
        f"{d}: {right[distances == d].float().mean():.2f} ({int((distances == d).sum())})" for d in distances.unique().tolist()
    )
    short = distances <= SHORT
    print(f"  accuracy by the answer's distance (pairs): {by_distance}")
    print(f"  all {right.float().mean():.3f}; distance <= {SHORT}: {right[short].float().mean():.3f} "
          f"({int(short.sum())} pairs), >= {SHORT + 1}: {right[~short].float().mean():.3f}")

    one = distances == 1
    last = task.lengths[one] - 1
    by_position = "  ".join(f"{p}: {int(right[one][last == p].sum())}/{int((last == p).sum())}" for p in last.unique().tolist())
    print(f"  distance 1, right/pairs by the last word's position: {by_position}")
    previous_token = next((h for h, role in roles.items() if role == "previous-token"), None)
    if previous_token is None:
        print("  (no previous-token role in the model's ground truth: attention not measured)")
        return
    layer, head = previous_token
    _, cache = model.run_with_cache(task.tokens("positive")[one], names_filter=f"blocks.{layer}.attn.hook_pattern")
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][torch.arange(len(last)), head, last]  # [pair, key]
    for label, rows in (("right", right[one]), ("wrong", ~right[one])):
        if rows.any():
            before, two_before = (pattern[rows, :].gather(-1, (last[rows] - k)[:, None]).mean() for k in (1, 2))
            print(f"  distance 1, {label} ({int(rows.sum())}): previous-token head {layer}.{head} from the last word "
                  f"to the word before {before:.2f}, to the word two before {two_before:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model folders written by saekit zoo train")
    args = parser.parse_args()
    distances = answer_distances()
    for folder in args.models:
        print(folder)
        report_distances(load_model(folder), ground_truth_roles(folder, "induction"), distances)


if __name__ == "__main__":
    main()
