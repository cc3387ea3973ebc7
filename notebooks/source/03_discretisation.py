# %% [markdown]
# # 03 · Discretisation: one code per (example, head)
#
# **Learning objectives**
#
# - turn SAE latents into integer codes with an argmax, and say why the method wants codes
#   rather than the latents themselves;
# - handle the all-zero latent vector with an explicit "no code" sentinel;
# - read a head's code histogram on positives vs negatives, and spot a circuit head by eye.
#
# **Estimated time:** 30 minutes (1 exercise). Runs in about 9 s on one CPU
# core (measured: papermill on its defaults, kernel start included).
#
# The score in notebook 04 compares *sets of codes*. Turning each latent vector into one integer
# throws away the strengths and keeps only *which* dictionary direction a head used: a head that
# switches direction when the task's information is removed is doing task work.

# %% tags=["parameters"]
MODEL = "toy-4l"
TASK = "ioi"  # "ioi", "greater-than", "docstring" or "induction"
SEED = 0
SAE = "relu"  # SAE architecture: any of saekit.sae.ARCHITECTURES (notebook 07 compares them)
N_PAIRS = 250
N_TRAIN_EXAMPLES = 10
D_SAE = 200

# %%
from dataclasses import replace

import torch

import saekit
from saekit.activations import head_activations
from saekit.codes import NO_CODE, head_codes, n_codes
from saekit.course import checks, use_solution
from saekit.discovery import paper_config
from saekit.sae import train_sae
from saekit.scoring import node_scores
from saekit.tasks import make_task
from saekit.viz import explore_code_histograms, plot_code_histogram, plot_head_grid

model = saekit.load_model(MODEL)
task = make_task(TASK, model, n_pairs=N_PAIRS, seed=SEED)
activations = head_activations(model, task, progress=False)
n_layers, n_heads = activations.n_layers, activations.n_heads

# the SAE of notebook 02: the head vectors of a few random examples, the paper's settings
assert N_TRAIN_EXAMPLES <= 2 * N_PAIRS, f"N_TRAIN_EXAMPLES={N_TRAIN_EXAMPLES} but N_PAIRS={N_PAIRS} gives {2 * N_PAIRS} examples"
all_vectors = torch.cat([activations.positive, activations.negative])
chosen = torch.randperm(len(all_vectors), generator=torch.Generator().manual_seed(SEED))[:N_TRAIN_EXAMPLES]
sae = train_sae(all_vectors[chosen].flatten(0, 1), replace(paper_config(TASK, architecture=SAE, d_sae=D_SAE).sae, seed=SEED))
positive_latents = sae.encode(activations.positive)  # [n_pairs, n_heads_total, d_sae]
print("latents:", tuple(positive_latents.shape), f"— on average {float((positive_latents != 0).sum(-1).float().mean()):.1f} active")

# %% [markdown]
# ## 1. Argmax codes and the "no code" sentinel
#
# The code of a latent vector is the index of its largest latent. One trap: when **every** latent
# is zero (all ReLUs closed), `argmax` returns 0 — the vector would be reported as "uses
# latent 0", merging it with real uses of latent 0. saekit gives such vectors the sentinel
# `NO_CODE = -1` instead, and scoring treats "no code" as a code value of its own.
#
# ### Exercise — codes from latents (⭐⭐, ~10 min)
#
# `latents` is `[..., d_sae]` (non-negative). Return the argmax index as a long tensor of shape
# `[...]`, with `NO_CODE` where all latents are zero.

# %%
def codes_from_latents(latents):
    """Index of the strongest latent; NO_CODE (-1) for an all-zero latent vector."""
    from saekit.codes import NO_CODE

    # BEGIN SOLUTION
    codes = latents.argmax(dim=-1)
    return codes.masked_fill((latents == 0).all(dim=-1), NO_CODE)
    # END SOLUTION


# %%
checks.codes_from_latents(codes_from_latents)

# %%
positive_codes = head_codes(sae, activations.positive)  # [n_pairs, n_heads_total]
negative_codes = head_codes(sae, activations.negative)
if not sae.signed:  # a signed SAE's codes also carry the sign (section 3)
    assert torch.equal(codes_from_latents(positive_latents), positive_codes)
assert positive_codes.shape == (N_PAIRS, n_layers * n_heads)
for codes in (positive_codes, negative_codes):
    assert NO_CODE <= int(codes.min()) and int(codes.max()) < n_codes(D_SAE, sae.signed), "codes are latent indices or NO_CODE"
silent = float(torch.cat([positive_codes, negative_codes]).eq(NO_CODE).float().mean())
print(f"codes range over [{int(positive_codes.min())}, {int(positive_codes.max())}]; {silent:.1%} of (example, head) are 'no code'")

# %% [markdown]
# A head that writes much the same vector on every prompt keeps one code on every example. That
# code need not be "no code": with the paper's ReLU SAE a vector at the bias `b` has latents
# `ReLU(b_enc)`, which are all zero only if every entry of `b_enc` is ≤ 0. The grid below counts
# distinct codes per head over all examples.

# %%
distinct = torch.tensor([torch.cat([positive_codes[:, h], negative_codes[:, h]]).unique().numel() for h in range(n_layers * n_heads)])
plot_head_grid(distinct.view(n_layers, n_heads), title=f"{TASK}: distinct codes per head (all {2 * N_PAIRS} examples)", label="codes");

# %% [markdown]
# ## 2. Positives vs negatives, head by head
#
# For a circuit head, some codes appear only on positives: the head writes something different
# when the task's information is there. For a head that ignores the task the two histograms look
# alike. Below: the head with the most positive-only codes, and the one with the fewest.

# %%
only_positive = node_scores(positive_codes, negative_codes)
best, worst = int(only_positive.argmax()), int(only_positive.argmin())
for flat_head in (best, worst):
    plot_code_histogram(positive_codes[:, flat_head], negative_codes[:, flat_head], title=f"head {flat_head // n_heads}.{flat_head % n_heads}")
assert only_positive[best] > only_positive[worst] or only_positive.max() == only_positive.min()

# %% [markdown]
# ## 3. Explore
#
# Pick any head (layer.head) and compare its histograms. Which heads would you call part of the
# circuit before seeing any score? (The dropdown needs a live Jupyter kernel; the figure under
# it is a static copy of its first view, which is what exported and rendered pages show.)

# %%
explore_code_histograms(positive_codes, negative_codes, n_heads, initial=divmod(best, n_heads))

# %% [markdown]
# ## 4. Signed SAEs
#
# Some SAE architectures (see the SAE architectures guide) give latents that can be negative.
# Then the strongest latent is the one of largest magnitude, and its sign is part of the code:
# `index` for positive, `index + d_sae` for negative (`codes_from_latents(latents, signed=True)`).
# `head_codes` reads `sae.signed` and does this for you.
#
# ## Summary
#
# - Code = argmax latent; an all-zero latent vector is `NO_CODE`, not latent 0.
# - The method compares code *sets* per head between positives and negatives.
#
# Next: **04 · Scoring** — turn the sets into a score per head and measure it.
