# %% [markdown]
# # 04 · Scoring heads, and measuring the scores
#
# **Learning objectives**
#
# - compute the node score `|P_h \ N_h|` and its normalised variant, and the edge variant;
# - evaluate a scoring against a ground-truth circuit: ROC AUC, precision and recall at *k*;
# - know the difference between the paper's "F1" (harmonic mean of TPR and TNR) and real F1;
# - report a result over seeds, with its spread.
#
# **Estimated time:** 40 minutes (2 exercises). Runs in about 18 s on one CPU
# core (measured: papermill on its defaults, kernel start included).
#
# A score per head is a *ranking*. ROC AUC asks how well the ranking separates circuit heads from
# the rest without choosing a threshold; precision and recall describe one particular cut.

# %% tags=["parameters"]
MODEL = "toy-4l"
TASK = "ioi"  # "ioi", "greater-than", "docstring" or "induction"
SEED = 0  # first seed; seeds SEED .. SEED + N_SEEDS - 1 are run
SAE = "relu"  # SAE architecture: any of saekit.sae.ARCHITECTURES (notebook 07 compares them)
N_SEEDS = 5  # the paper reports 10
N_PAIRS = 250
K = None  # heads in the selected circuit; None: as many as the known circuit has

# %%
import matplotlib.pyplot as plt
import torch

import saekit
from saekit.activations import head_activations
from saekit.codes import head_codes
from saekit.course import checks, use_solution
from saekit.discovery import discover, paper_config
from saekit.errors import TaskError
from saekit.ablation import random_head_masks
from saekit.scoring import chance_aucs, metrics_at_k, node_scores, selection_metrics, verdict
from saekit.tasks import make_task
from saekit.tasks.ground_truth import ground_truth_heads, heads_to_mask
from saekit.viz import plot_head_grid, plot_roc

model = saekit.load_model(MODEL)
task = make_task(TASK, model, n_pairs=N_PAIRS, seed=SEED)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
activations = head_activations(model, task, progress=False)  # taken once, reused by every run below
try:
    truth = ground_truth_heads(MODEL, TASK)
except TaskError as err:
    truth = None
    print(err)
seeds = range(SEED, SEED + N_SEEDS)
node = discover(model, task, paper_config(TASK, architecture=SAE), seeds=seeds, ground_truth=truth, activations=activations, progress=False)
print(f"node scores for {N_SEEDS} seeds:", tuple(node.scores.shape))

# %% [markdown]
# ## 1. The node score
#
# For head *h*: `P_h` is the set of codes it takes on the positives, `N_h` on the negatives.
# `score_h = |P_h \ N_h|` counts the codes that *only* appear when the model can do the task.
# ("No code", −1, is a code value like any other.)
#
# ### Exercise 1 — node scores (⭐⭐, ~10 min)
#
# `positive_codes` is `[n_pos, n_heads_total]`, `negative_codes` `[n_neg, n_heads_total]`;
# return a `[n_heads_total]` tensor. A loop over heads with Python sets is fine here (the
# library vectorises it with a code-occupancy table).

# %%
def node_scores_by_hand(positive_codes, negative_codes):
    """|set of positive codes − set of negative codes| for every head."""
    import torch

    # BEGIN SOLUTION
    counts = []
    for head in range(positive_codes.shape[1]):
        on_positive = set(positive_codes[:, head].tolist())
        on_negative = set(negative_codes[:, head].tolist())
        counts.append(len(on_positive - on_negative))
    return torch.tensor(counts)
    # END SOLUTION


# %%
checks.node_scores(node_scores_by_hand)

# %% [markdown]
# On the real codes of one SAE, yours should agree with the library's:

# %%
from dataclasses import replace

from saekit.sae import train_sae

all_vectors = torch.cat([activations.positive, activations.negative])
chosen = torch.randperm(len(all_vectors), generator=torch.Generator().manual_seed(SEED))[: paper_config(TASK).sae_examples]
sae = train_sae(all_vectors[chosen].flatten(0, 1), replace(paper_config(TASK, architecture=SAE).sae, seed=SEED))
positive_codes, negative_codes = head_codes(sae, activations.positive), head_codes(sae, activations.negative)
assert torch.equal(node_scores_by_hand(positive_codes, negative_codes).float(), node_scores(positive_codes, negative_codes))
plot_head_grid(node.scores[0], title=f"{TASK}: node score, seed {SEED}", label="|P \\ N|", highlight=truth);

# %% [markdown]
# ## 2. Three scores, one ROC plot
#
# - **node_normalised** divides by `|P_h ∪ N_h|`: a head with many codes overall is not
#   rewarded for having many positive-only ones by chance.
# - **edge** counts code *pairs* `(code(h1), code(h2))` seen together on some positive and on no
#   negative, ranks the ordered head pairs and counts how often each head appears among the top
#   `n_heads²/4` of them (the authors' code keeps the first `n_heads²/2` heads of a list that
#   names two heads per pair). It is still scored against *head* membership.
#
# ROC: sweep a threshold down the ranking; at each step plot the fraction of circuit heads found
# (TPR) against the fraction of other heads picked up (FPR). The area under it is the probability
# that a random circuit head outranks a random other head (0.5 = chance).
#
# On the shipped toy-4l the node score reaches an AUC of about 0.58 on IOI, 0.60 on
# greater-than and 0.50 on docstring, and only 0.42 on induction. There two of the three
# circuit heads (the layer-3 heads 3.0 and 3.2) write along the same direction on positives and
# negatives: on negatives, with no earlier copy to find, they write about twice as much. Their
# argmax code stays the same, so no code is "positive only", while heads outside the circuit
# (1.6, 2.5, 1.2) change direction and top the ranking. The code-overlap method finds heads whose codes
# *change* between the two sides, not heads whose output grows or shrinks. Try
# `TASK = "induction"` and compare the ranking with the ground-truth grid: the cell below judges
# each AUC against random rankings of the heads (two sd) and says when it is no better than
# chance, as it is there — the method fails on this task.

# %%
by_score = {"node": node}
for score in ("node_normalised", "edge"):
    by_score[score] = discover(model, task, paper_config(TASK, architecture=SAE, score=score), seeds=seeds, ground_truth=truth,
                               activations=activations, progress=False)
if truth is not None:
    plot_roc({name: result.scores[0] for name, result in by_score.items()}, truth, title=f"{TASK} on {MODEL}, seed {SEED}")
    for name, result in by_score.items():
        spread = f"± {result.auc_std:.3f} over {N_SEEDS} seeds" if N_SEEDS > 1 else "(one seed: no spread)"
        print(f"{name:>16}: AUC {result.auc_mean:.3f} {spread}")
    above_chance = verdict(node.auc_mean, chance_aucs(truth, n_layers, n_heads, seed=SEED),
                           f"The node score's mean ROC AUC over {N_SEEDS} seed(s)", "random rankings")
    print(above_chance.sentence)

# %% [markdown]
# ## 3. Precision and recall at *k*
#
# To *use* a circuit you have to cut the ranking: keep the top *k* heads. Precision = the share
# of those *k* that are circuit heads; recall = the share of circuit heads that made the cut.
#
# ### Exercise 2 — precision and recall at k (⭐, ~5 min)
#
# `scores` and `is_true` (bool) are flat `[n_heads_total]` tensors.

# %%
def precision_recall_at_k(scores, is_true, k):
    """(precision, recall) of the k highest-scoring heads."""
    import torch

    # BEGIN SOLUTION
    picked = torch.sort(scores, descending=True, stable=True).indices[:k]  # stable: ties by head index
    hits = int(is_true[picked].sum())
    return hits / k, hits / int(is_true.sum())
    # END SOLUTION


# %%
checks.precision_recall_at_k(precision_recall_at_k)

# %% [markdown]
# The library's `metrics_at_k` gives the same two numbers plus F1, and the paper's "F1": the
# harmonic mean of TPR and TNR. It puts TNR (the share of other heads left out) where F1 puts
# precision, so the two can differ a lot, in either direction, and a value of either means
# little on its own: what a *random* circuit of the same size gets depends on how large a share
# of all heads the circuit is. So the cell compares each number with random circuits of the
# same size, by the rule every notebook uses (`saekit.scoring.verdict`: beats = more than two sd
# above the random circuits' mean). Report both, each with its random baseline.

# %%
if truth is not None:
    k = K if K is not None else len(truth)
    flat_truth = heads_to_mask(truth, n_layers, n_heads).flatten()
    mean_scores = node.mean_scores
    precision, recall = precision_recall_at_k(mean_scores.flatten(), flat_truth, k)
    library = metrics_at_k(mean_scores, truth, k)
    assert abs(precision - library["precision"]) < 1e-9 and abs(recall - library["recall"]) < 1e-9
    print(f"top {k} heads by mean node score: " + ", ".join(f"{name} {library[name]:.2f}" for name in ("precision", "recall", "f1", "paper_f1")))
    random_metrics = [selection_metrics(mask, truth) for mask in random_head_masks(n_layers, n_heads, k, seeds=range(200))]
    for name, label in (("f1", "F1"), ("paper_f1", 'The paper\'s "F1"')):
        print(verdict(library[name], [m[name] for m in random_metrics], f"{label} of the top {k} heads", f"random {k}-head circuits").sentence)
    ks = range(1, n_layers * n_heads + 1)
    curves = [metrics_at_k(mean_scores, truth, kk) for kk in ks]
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    for name in ("precision", "recall", "f1", "paper_f1"):
        ax.plot(list(ks), [c[name] for c in curves], label=name)
    ax.axvline(len(truth), color="grey", linestyle=":", label="size of known circuit")
    ax.set(xlabel="k (heads kept)", ylabel="value", title=f"{TASK}: selection metrics vs k")
    ax.legend(fontsize=8)

# %% [markdown]
# ## 4. Seeds: how stable is the result?
#
# Each seed draws new SAE training examples and a new initialisation. The spread over seeds is
# part of the result: the paper reports mean ± sd over 10 seeds.

# %%
if truth is not None:
    fig, ax = plt.subplots(figsize=(5, 2.8), layout="constrained")
    for position, (name, result) in enumerate(by_score.items()):
        ax.scatter([position] * N_SEEDS, result.auc_per_seed, alpha=0.7)
        ax.errorbar(position + 0.15, result.auc_mean, yerr=result.auc_std, fmt="o", color="black", capsize=4)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(by_score)), list(by_score))
    ax.set(ylabel="ROC AUC", title=f"{TASK}: AUC per seed (dots) and mean ± sd")
if N_SEEDS > 1:
    stability = torch.stack([torch.corrcoef(torch.stack([node.scores[0].flatten(), s.flatten()]))[0, 1] for s in node.scores[1:]])
    print(f"correlation of seed {SEED}'s scores with the other seeds':", [round(float(v), 2) for v in stability])
else:
    print("with N_SEEDS = 1 there is no other seed to compare with")

# %% [markdown]
# ## Summary
#
# - Node score = codes only on positives; normalised and edge variants exist.
# - ROC AUC measures the ranking; precision/recall/F1 measure one cut. The paper's "F1" is not F1.
# - Always report spread over seeds.
#
# Next: **05 · Ablation and validation** — does the selected circuit actually do the task?
