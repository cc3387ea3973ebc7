# %% [markdown]
# # 02 · Training the SAE on head vectors
#
# **Learning objectives**
#
# - explain the paper's SAE (tied bias, ReLU latents, unit-norm decoder) and its loss;
# - train one SAE shared by all heads, on the vectors of only a handful of examples;
# - measure a reconstruction properly (MSE, explained variance *about the mean*, L0, dead latents);
# - predict what the sparsity coefficient λ and the dictionary size do;
# - keep the two example counts apart: examples that **train** the SAE and examples that are **counted**.
#
# **Estimated time:** 45 minutes (2 exercises). Runs in about 17 s on one CPU
# core (measured: papermill on its defaults, kernel start included).
#
# The SAE is not here to reconstruct the model perfectly. Its job is to give every head vector a
# *name*: the latent that fires most (notebook 03). A small dictionary (the paper's 200 latents
# are under-complete for GPT-2's 768 dimensions, over-complete for toy-4l's 64) trained on few
# examples is enough for that. The paper found few training examples even better; the last
# section tests that on this model.

# %% tags=["parameters"]
MODEL = "toy-4l"  # "gpt2-small" for the paper's IOI / greater-than setting
TASK = "ioi"
SEED = 0
N_PAIRS = 250  # positive/negative pairs (the paper: 250)
N_TRAIN_EXAMPLES = 10  # examples whose head vectors train the SAE (the paper: 10)
D_SAE = 200  # dictionary size (the paper: 200)
L1_COEFFICIENT = None  # None: the paper's, 0.05 for docstring and 0.02 otherwise
STEPS = 500

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import torch

import saekit
from saekit.activations import head_activations
from saekit.codes import head_codes
from saekit.course import checks, use_solution
from saekit.discovery import discover, paper_config
from saekit.errors import TaskError
from saekit.sae import reconstruction_metrics, train_sae
from saekit.tasks import make_task
from saekit.tasks.ground_truth import ground_truth_heads

overrides = {} if L1_COEFFICIENT is None else {"l1_coefficient": L1_COEFFICIENT}
discovery_config = paper_config(TASK, d_sae=D_SAE, steps=STEPS, sae_examples=N_TRAIN_EXAMPLES, **overrides)
l1_coefficient = discovery_config.sae.l1_coefficient
model = saekit.load_model(MODEL)
task = make_task(TASK, model, n_pairs=N_PAIRS, seed=SEED)
activations = head_activations(model, task, progress=False)
n_layers, n_heads = activations.n_layers, activations.n_heads
print(f"{TASK} on {MODEL}: {N_PAIRS} pairs, {activations.n_heads_total} heads, vectors of width {activations.width}")

# %% [markdown]
# ## 1. The SAE and its loss
#
# One SAE reads every head's vector `x` (width d_model):
#
# ```text
# f = ReLU(W_enc (x − b) + b_enc)      latents, d_sae of them, mostly zero
# x̂ = W_dec f + b                      reconstruction; rows of W_dec have unit norm
# loss = mean((x̂ − x)²) + λ · mean_samples Σ_latents |f|
# ```
#
# The bias `b` is subtracted before encoding and added back after decoding, so the latents
# describe how a vector differs from the typical head vector. Unit-norm decoder rows stop the
# SAE from cheating the L1 penalty by shrinking `f` and growing `W_dec`.
#
# ### Exercise 1 — the loss (⭐, ~5 min)

# %%
def sae_loss(x, x_hat, latents, l1_coefficient):
    """Reconstruction MSE plus the L1 sparsity penalty, averaged over samples."""
    # BEGIN SOLUTION
    mse = (x_hat - x).pow(2).mean()
    l1 = latents.abs().sum(dim=-1).mean()
    return mse + l1_coefficient * l1
    # END SOLUTION


# %%
checks.sae_loss(sae_loss)

# %% [markdown]
# ## 2. Training on a handful of examples
#
# Every (example, head) vector is one training sample, so 10 examples already give
# 10 × n_heads samples. The examples are drawn at random from positives and negatives together,
# with a local generator (never the global RNG), so a seed reproduces the run. (This is what
# `saekit.discovery.discover` does for each seed; here we do it by hand once.)

# %%
assert N_TRAIN_EXAMPLES <= 2 * N_PAIRS, f"N_TRAIN_EXAMPLES={N_TRAIN_EXAMPLES} but N_PAIRS={N_PAIRS} gives {2 * N_PAIRS} examples"
generator = torch.Generator().manual_seed(SEED)
all_vectors = torch.cat([activations.positive, activations.negative])  # [2 * n_pairs, n_heads_total, d]
chosen = torch.randperm(len(all_vectors), generator=generator)[:N_TRAIN_EXAMPLES]
samples = all_vectors[chosen].flatten(0, 1)
print("training samples:", tuple(samples.shape), f"({N_TRAIN_EXAMPLES} examples x {activations.n_heads_total} heads)")

config = discovery_config.sae  # SAEConfig(d_sae=D_SAE, l1_coefficient=..., steps=STEPS, ...)
sae = train_sae(samples, replace(config, seed=SEED))
print(sae.config)  # the configuration it was trained with
assert sae.encode(samples).shape == (len(samples), D_SAE)

# %% [markdown]
# The loss you wrote should match what the trainer minimised:

# %%
latents = sae.encode(samples)
print("loss on the training samples:", float(sae_loss(samples, sae.decode(latents), latents, l1_coefficient)))
assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(D_SAE), atol=1e-4), "decoder rows are unit norm"

# %% [markdown]
# ## 3. Measuring the reconstruction
#
# Mean squared error alone has no scale. **Explained variance** compares it with the variance of
# the data — about the data's *mean*: a model that only outputs the mean vector explains 0 %,
# not the large figure you would get measuring about zero.
#
# ### Exercise 2 — explained variance (⭐⭐, ~10 min)

# %%
def explained_variance(x, x_hat):
    """1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖², over all samples and dimensions."""
    # BEGIN SOLUTION
    residual = (x - x_hat).pow(2).sum()
    total = (x - x.mean(dim=0)).pow(2).sum()
    return float(1 - residual / total)
    # END SOLUTION


# %%
checks.explained_variance(explained_variance)

# %%
on_train = reconstruction_metrics(sae, samples)
on_all = reconstruction_metrics(sae, all_vectors.flatten(0, 1))
assert abs(explained_variance(samples, sae.decode(sae.encode(samples))) - on_train["explained_variance"]) < 1e-4
for name in ("mse", "explained_variance", "l0", "dead_fraction"):
    print(f"{name:>20}: train {on_train[name]:8.4f}   all {2 * N_PAIRS} examples {on_all[name]:8.4f}")
assert on_train["explained_variance"] > 0, "the SAE should beat predicting the mean"
assert 0 < on_train["l0"] <= D_SAE

# %% [markdown]
# Expect the held-out figures (all examples) to be a little worse than the training ones: the SAE
# saw only a few examples. That is fine — the codes only need the *strongest* latent to be
# consistent, not the reconstruction to be exact.
#
# ## 4. What λ and the dictionary size do
#
# λ trades reconstruction for sparsity: larger λ → fewer active latents (lower L0), worse
# explained variance, more dead latents. A smaller dictionary forces heads to share latents,
# which gives coarser codes. The sweep below trains a few SAEs around the chosen settings.

# %%
rows = []
for d_sae in (max(2, D_SAE // 4), D_SAE):
    for factor in (0.25, 1.0, 4.0):
        swept = train_sae(samples, replace(config, d_sae=d_sae, l1_coefficient=l1_coefficient * factor, seed=SEED))
        metrics = reconstruction_metrics(swept, all_vectors.flatten(0, 1))
        codes_used = head_codes(swept, all_vectors).unique().numel()
        rows.append((d_sae, l1_coefficient * factor, metrics["l0"], metrics["explained_variance"], metrics["dead_fraction"], codes_used))
print(f"{'d_sae':>6} {'λ':>8} {'L0':>7} {'EV':>7} {'dead':>6} {'codes used':>11}")
for row in rows:
    print(f"{row[0]:>6} {row[1]:>8.4f} {row[2]:>7.2f} {row[3]:>7.3f} {row[4]:>6.2f} {row[5]:>11}")
# within one dictionary size, a larger λ never gives more active latents
for d_sae in {row[0] for row in rows}:
    l0s = [row[2] for row in rows if row[0] == d_sae]
    assert l0s[0] >= l0s[-1], f"L0 should fall as λ grows (d_sae={d_sae}): {l0s}"

# %% [markdown]
# ## 5. Two knobs that must stay separate
#
# - **Training examples** (`N_TRAIN_EXAMPLES`): the paper found *fewer is better* (GPT-2
#   greater-than: AUC .861 with 5, .679 with 250). Few examples → a small, coarse dictionary of
#   "typical head behaviours" rather than fine details of individual prompts. toy-4l does not
#   reproduce this except on induction: 50 training examples instead of 10 give 0.612 / 0.602 /
#   0.519 / 0.402 on ioi / greater-than / docstring / induction, against 0.584 / 0.596 / 0.503 /
#   0.416 (10 seeds, `benchmarks/README.md`).
# - **Counting examples**: how many positives and negatives are encoded to collect each head's
#   code sets. *More is better* (.559 with 5 → .845 with 250): rare codes only show up with
#   enough examples.
#
# Below both are varied on this model, against its ground-truth circuit (when one is known).

# %%
try:
    truth = ground_truth_heads(MODEL, TASK)
except TaskError as err:
    truth = None
    print("No ground truth, so no AUC:", err)


def auc_for(n_train: int, n_count: int) -> float:
    """ROC AUC of node scores: SAE trained on n_train examples, codes counted on n_count pairs."""
    knobs = paper_config(TASK, d_sae=D_SAE, steps=STEPS, sae_examples=n_train, count_examples=n_count, **overrides)
    return discover(model, task, knobs, seeds=[SEED], ground_truth=truth, activations=activations, progress=False).auc_mean


if truth is not None:
    train_counts = sorted({max(2, N_TRAIN_EXAMPLES // 2), N_TRAIN_EXAMPLES, min(2 * N_PAIRS, 10 * N_TRAIN_EXAMPLES)})
    count_counts = sorted({min(5, N_PAIRS), max(1, N_PAIRS // 5), N_PAIRS})
    train_aucs = [auc_for(n, N_PAIRS) for n in train_counts]
    count_aucs = [auc_for(N_TRAIN_EXAMPLES, n) for n in count_counts]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained", sharey=True)
    left.plot(train_counts, train_aucs, marker="o")
    left.set(xscale="log", xlabel="examples that train the SAE", ylabel="ROC AUC", title=f"codes counted on {N_PAIRS} pairs")
    right.plot(count_counts, count_aucs, marker="o", color="C1")
    right.set(xscale="log", xlabel="pairs whose codes are counted", title=f"SAE trained on {N_TRAIN_EXAMPLES} examples")
    fig.suptitle(f"{TASK} on {MODEL}: the two example counts")
    assert all(0.0 <= auc <= 1.0 for auc in train_aucs + count_aucs)

# %% [markdown]
# ## Summary
#
# - One SAE for all heads, trained full-batch on the vectors of ~10 examples.
# - Measure reconstructions with explained variance about the mean, L0 and dead latents.
# - λ buys sparsity with reconstruction; the dictionary size sets how fine the codes are.
# - Train on few examples, count codes on many.
#
# Next: **03 · Discretisation** — from latents to one code per (example, head).
