"""Where IOI's negatives sit among their three names, on the card's pairs (`saekit zoo check`).

An IOI negative ("When A and C went to the store , B gave a drink to") keeps the positive's
indirect object A, puts a third name C where the subject's first occurrence was, and keeps the
subject B as the giver. IOI's metric on it, logit(A) − logit(B), compares a name of the first
clause with the giver; A against C compares the two names the negative leaves equally
plausible. A model trained with ``ioi_negative="giver"`` has the other negative ("When A and B
went to the store , C gave a drink to"): there C is the giver and A − B compares the two names
of the first clause. Per model: the mean logit differences at the final position and the mean
probability of each name, on positives (where C does not occur) and on negatives.

::

    python benchmarks/testbed_ioi_names.py MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import argparse

import torch
from jaxtyping import Float
from torch import Tensor

from saekit.models import load_model
from saekit.tasks import make_task
from saekit.tasks.toy import toy_pairs
from saekit.zoo.evaluate import EVAL_PAIRS, EVAL_SEED, answer_logits


def name_logits(model) -> dict[str, Float[Tensor, "n_pairs 3"]]:
    """Per side, final-position logits of the indirect object, the third name and the subject, per pair."""
    task = make_task("ioi", model.tokenizer, EVAL_PAIRS, EVAL_SEED)
    # (IO, third, subject): the paper's negative names all three, and either negative draws the same names.
    names = [pair.negative_options for pair in toy_pairs("ioi", EVAL_PAIRS, EVAL_SEED)]
    ids = torch.tensor([model.tokenizer.convert_tokens_to_ids(list(three)) for three in names])
    assert torch.equal(ids[:, 0], task.answer_tokens[:, 0]) and torch.equal(ids[:, 2], task.wrong_tokens[:, 0])
    return {side: answer_logits(model, task, side).gather(-1, ids) for side in ("positive", "negative")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model folders written by saekit zoo train")
    args = parser.parse_args()
    print("model | positives IO−S | negatives IO−third | negatives IO−S | negatives third−S | "
          "negatives' share of IO, third, S among the three")
    for folder in args.models:
        model = load_model(folder)
        logits = name_logits(model)
        positive, negative = logits["positive"], logits["negative"]
        io_third, io_s, third_s = (
            (negative[:, i] - negative[:, j]).mean() for i, j in ((0, 1), (0, 2), (1, 2))
        )
        probabilities = " ".join(f"{p:.2f}" for p in negative.softmax(-1).mean(0).tolist())
        print(
            f"{folder} | {(positive[:, 0] - positive[:, 2]).mean():+.2f} | {io_third:+.2f} | {io_s:+.2f} | "
            f"{third_s:+.2f} | {probabilities}"
        )


if __name__ == "__main__":
    main()
