# %% [markdown]
# # 06 · Your own task (and your own model)
#
# **Learning objectives**
#
# - build a contrastive task from plain strings with `task_from_strings`, and understand the
#   checks it makes (equal lengths, single-token answers);
# - design negatives: see what a good negative removes, and what two bad ones do to the result;
# - run the method on your task, and know what to change for another model.
#
# **Estimated time:** 45 minutes (1 exercise, plus your own task). Runs in about 11 s on one CPU
# core (measured: papermill on its defaults, kernel start included).
#
# The method is only as good as its contrast. A negative should be a *minimal* edit that removes
# the one piece of information the task needs: then the heads whose codes change are the heads
# that use it. Change too much and every head changes; change the wrong thing and the model can
# still do the task.

# %% tags=["parameters"]
MODEL = "toy-4l"  # any model saekit.load_model reads: a toy name, a TransformerLens name, a folder
TASK = "ioi"  # the built-in task whose known circuit the new task is compared with (the prompts
# below are IOI-shaped whatever TASK says: another TASK only compares them with another circuit)
SEED = 0
N_PAIRS = 100
# The new task's prompt: {IO} and {S} are names, the answer is IO. Every word must be one token.
TEMPLATE = "When {IO} and {S} went to the {PLACE} , {S} gave a {OBJECT} to"

# %%
import numpy as np
import torch

import saekit
from saekit.course import checks, use_solution
from saekit.discovery import discover, paper_config
from saekit.errors import TaskError
from saekit.scoring import chance_aucs, verdict
from saekit.tasks import task_from_strings
from saekit.tasks.ground_truth import ground_truth_heads
from saekit.tasks.toy import NAMES, OBJECTS, PLACES

model = saekit.load_model(MODEL)
tokenizer = model.tokenizer


def single_tokens(words):
    """The words that are one token with a leading space (how they appear mid-sentence)."""
    return [word for word in words if len(tokenizer.encode(" " + word, add_special_tokens=False)) == 1]


names, places, objects = single_tokens(NAMES), single_tokens(PLACES), single_tokens(OBJECTS)
print(f"{len(names)} names, {len(places)} places, {len(objects)} objects are single tokens for {MODEL}")
assert len(names) >= 3 and places and objects

# %% [markdown]
# ## 1. Positives from a template
#
# Each positive fills the template with two distinct names (IO, S), a place and an object, from a
# local random generator (never the global one). The right answer is ` IO`, the wrong one ` S`:
# the metric is their logit difference.

# %%
rng = np.random.default_rng(SEED)
fills = []
for _ in range(N_PAIRS):
    io, s, third = rng.choice(names, size=3, replace=False)
    fills.append({"IO": io, "S": s, "THIRD": third, "PLACE": rng.choice(places), "OBJECT": rng.choice(objects)})
positives = [TEMPLATE.format(**fill) for fill in fills]
answers = [" " + fill["IO"] for fill in fills]
wrong_answers = [" " + fill["S"] for fill in fills]
print(positives[0], "→", answers[0])

# %% [markdown]
# ## 2. A good negative: a third name
#
# Replace the *first* mention of S by a third name. Now no name repeats, so "who was mentioned
# twice" — the information IOI needs — is gone, while every position, word type and length stays
# the same.
#
# ### Exercise — the third-name negative (⭐, ~5 min)

# %%
def third_name_negative(positive, subject, replacement):
    """``positive`` with the first mention of ``subject`` (a whole word) replaced."""
    # BEGIN SOLUTION
    words = positive.split(" ")
    words[words.index(subject)] = replacement
    return " ".join(words)
    # END SOLUTION


# %%
checks.third_name_negative(third_name_negative)

# %% [markdown]
# Two bad negatives, to compare:
#
# - **shuffled**: the positive's words in random order (all but the first). Everything changes, so nearly every
#   head's codes change: the contrast no longer points at the task.
# - **swapped**: the final clause names IO instead of S. The prompt still has a repeated name, so
#   the model still solves an IOI problem — just with the other answer. The information was not
#   removed, only moved.
#
# `task_from_strings` checks what must hold for any task: a positive and its negative tokenize to
# the same length, and answers are single tokens. Try breaking it: make a negative one word
# longer and read the error.

# %%
def shuffled(positive):
    """The words after the first in random order (the first stays: with a BPE tokenizer a word at
    the start of a prompt tokenizes differently from the same word mid-sentence)."""
    first, *rest = positive.split(" ")
    return " ".join([first, *(rest[i] for i in shuffle_rng.permutation(len(rest)))])


shuffle_rng = np.random.default_rng([SEED, 1])  # its own generator: rerunning this cell alone gives the same negatives


negatives = {
    "third name (good)": [third_name_negative(p, f["S"], f["THIRD"]) for p, f in zip(positives, fills)],
    "shuffled (bad)": [shuffled(p) for p in positives],
    "swapped (bad)": [TEMPLATE.replace("{S} gave", "{IO} gave").format(**f) for f in fills],
}
tasks = {
    name: task_from_strings(tokenizer, f"my-{TASK}-{index}", positives, negative, answers, wrong_answers, metric="logit_diff")
    for index, (name, negative) in enumerate(negatives.items())
}
for name, negative in negatives.items():
    print(f"{name:>18}: {negative[0]}")

try:
    task_from_strings(tokenizer, "broken", positives[:1], [positives[0] + " again"], answers[:1], wrong_answers[:1])
except TaskError as err:
    print("\nTaskError:", err)

# %% [markdown]
# ## 3. Does the model do it? Does the negative take it away?
#
# A usable task has a clearly positive metric on positives and a metric near zero (or below) on
# good negatives. If the positives' metric is near zero, the model cannot do your task — no
# circuit method will find anything meaningful.

# %%
with torch.no_grad():
    for name, task in tasks.items():
        positive_metric = task.metric_from_logits(model(task.positive_tokens)).mean()
        negative_metric = task.metric_from_logits(model(task.negative_tokens)).mean()
        print(f"{name:>18}: positives {positive_metric:6.2f}   negatives {negative_metric:6.2f}")
        if name.startswith("third"):
            assert positive_metric > negative_metric, "the good negative should remove the task"

# %% [markdown]
# ## 4. Run the method on each version
#
# Same model, same positives, three kinds of negatives. With a known circuit for the built-in
# task we can measure how well each contrast ranks its heads, and compare each ROC AUC with
# chance: the AUCs of random rankings of the heads (`saekit.scoring.verdict`, the two-sd rule
# every notebook uses). Do not expect the good negative to win on every model and seed: a bad
# contrast changes many heads' codes at once, circuit heads among them, so it can rank them
# above chance too. What it cannot tell you is *which* information those heads carry: with the
# shuffled negative, "the prompt is no longer a sentence" is as much a reason as the repeated
# name.

# %%
try:
    truth = ground_truth_heads(MODEL, TASK)
except TaskError as err:
    truth = None
    print(err)
results = {name: discover(model, task, paper_config(TASK), seeds=[SEED], ground_truth=truth, progress=False)
           for name, task in tasks.items()}
for name, result in results.items():
    print(f"{name:>18}: top heads {result.ranked_heads[:5]}")
if truth is not None:
    chance = chance_aucs(truth, model.cfg.n_layers, model.cfg.n_heads, seed=SEED)
    for name, result in results.items():
        print(verdict(result.auc_mean, chance, f"{name}: ROC AUC vs the known {TASK} circuit", "random rankings").sentence)
    best = max(results, key=lambda name: results[name].auc_mean)
    print(f"\nclosest to the known {TASK} circuit: {best}")

# %% [markdown]
# ## 5. Your turn
#
# 1. Change `TEMPLATE` (keep `{IO}`, `{S}` twice, `{PLACE}`, `{OBJECT}`) and rerun: does the
#    model still do it?
# 2. Write a task of your own: lists of positives, negatives, answers and wrong answers are all
#    `task_from_strings` needs. For a probability-style metric pass `metric="prob_diff"`; for
#    "correct vs best wrong" pass `metric="logit_diff_max"`.
# 3. What makes a good negative? Same length and structure; the one fact the task needs removed;
#    the model's metric near chance on it.
#
# ## Another model
#
# `saekit.load_model` reads three things: a shipped toy model (`"toy-4l"`), a TransformerLens
# name (`"gpt2-small"`, `"pythia-70m"`, … — cached by `saekit models --download NAME` on a machine
# with internet), or a local folder holding a Hugging Face causal LM saved with
# `save_pretrained` (model and tokenizer). Everything after loading is the same code:
#
# ```python
# model = saekit.load_model("path/to/my-model")   # or "gpt2-small"
# task = task_from_strings(model.tokenizer, "my-task", positives, negatives, answers, wrong_answers)
# result = discover(model, task, paper_config("my-task"), seeds=range(10))
# ```
#
# With a BPE tokenizer remember the leading space of answers (`" Mary"`), and check that names
# are single tokens (the `single_tokens` helper above does).
#
# ## Summary
#
# - `task_from_strings` turns lists into a checked task; BOS is added for you.
# - A good negative is a minimal edit that removes exactly the task's information.
# - The same pipeline runs on any model `load_model` reads.
