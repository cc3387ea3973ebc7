# %% [markdown]
# # 05 · Ablation: is the found circuit faithful?
#
# **Learning objectives**
#
# - ablate every head outside a circuit at `hook_z`, with mean, resample and zero ablation, and
#   explain why mean ablation is the default;
# - compute normalised faithfulness and build the paper's table 4 (full model, everything
#   ablated, known circuit, SAE circuit, random circuit);
# - draw faithfulness curves: heads added in score order vs in random order;
# - compare the SAE method with the expensive baselines (activation patching, attribution
#   patching, HISP, ACDC over heads) on quality and cost, and with trivial rankings (head norm,
#   mean difference, probe, layer index) that any method must beat.
#
# **Estimated time:** 45 minutes (2 exercises). Runs in about 17 s on one CPU
# core (measured: papermill on its defaults, kernel start included).
#
# A score map is a hypothesis about which heads matter. Ablation tests it: if the circuit is
# right, the model with *only* the circuit's heads intact still does the task.

# %% tags=["parameters"]
MODEL = "toy-4l"
TASK = "ioi"  # "ioi", "greater-than", "docstring" or "induction"
SEED = 0
SAE = "relu"  # SAE architecture: any of saekit.sae.ARCHITECTURES (notebook 07 compares them)
N_PAIRS = 100  # prompts the circuits are evaluated on (every circuit is one pass over them)
CIRCUIT_SIZE = None  # None: as many heads as the known circuit (or a quarter of all heads)
N_RANDOM = 5  # random circuits / random orders to compare with
CURVE_POINTS = 9  # circuit sizes on the faithfulness curves (evenly spaced, 0 .. all heads)
ACDC_THRESHOLD = 0.02  # faithfulness a head must move to stay in the ACDC circuit

# %%
import time

import matplotlib.pyplot as plt
import torch

import saekit
from saekit.ablation import circuit_table, evaluate_circuit, faithfulness_curves
from saekit.baselines import BASELINES, TRIVIAL_BASELINES
from saekit.course import checks, use_solution
from saekit.discovery import discover, paper_config
from saekit.errors import TaskError
from saekit.scoring import roc_auc, top_k_mask, verdict
from saekit.tasks import make_task
from saekit.tasks.ground_truth import ground_truth_heads, ground_truth_roles
from saekit.viz import explore_threshold, plot_circuit_heads, plot_faithfulness_curves, plot_head_grid

model = saekit.load_model(MODEL)
task = make_task(TASK, model, n_pairs=N_PAIRS, seed=SEED)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
try:
    truth = ground_truth_heads(MODEL, TASK)
except TaskError as err:
    truth = None
    print(err)
started = time.perf_counter()
found = discover(model, task, paper_config(TASK, architecture=SAE), seeds=[SEED], ground_truth=truth, progress=False)
sae_seconds = time.perf_counter() - started
scores = found.mean_scores
size = CIRCUIT_SIZE if CIRCUIT_SIZE is not None else (len(truth) if truth is not None else max(1, scores.numel() // 4))
circuit = top_k_mask(scores, size)
print(f"SAE circuit ({size} heads, found in {sae_seconds:.1f} s):", sorted(found.ranked_heads[:size]))

# %% [markdown]
# ## 1. Ablating the heads outside the circuit
#
# Every intervention acts on one head's `blocks.L.attn.hook_z` — never on the summed attention
# output, where heads can no longer be told apart (notebook 01). A knocked-out head's `z` is
# replaced by:
#
# - **mean** (default): its mean over a reference set (the negatives), per template and
#   position: what the head "usually" says, without the task's information;
# - **resample**: its value on the paired negative prompt;
# - **zero**: zeros — off-distribution (a head never outputs zeros), so the model is pushed into
#   states it never saw and heads look more important than they are.
#
# ### Exercise 1 — mean-ablate the heads outside a circuit (⭐⭐, ~10 min)
#
# `z` is `[batch, pos, n_heads, d_head]` (one layer), `mean_z` is `[n_heads, d_head]`, `keep`
# is `[n_heads]` (True = in the circuit). Return z with every head *not* kept replaced by its mean.

# %%
def mean_ablate(z, mean_z, keep):
    """Heads outside the circuit take their mean z; circuit heads keep their own."""
    import torch

    # BEGIN SOLUTION
    return torch.where(keep[:, None], z, mean_z)
    # END SOLUTION


# %%
checks.mean_ablate(mean_ablate)

# %% [markdown]
# ### Exercise 2 — normalised faithfulness (⭐, ~5 min)
#
# With `F(M)` the full model's metric, `F(∅)` the metric with every head ablated and `F(C)`
# the circuit's: `(F(C) − F(∅)) / (F(M) − F(∅))`.

# %%
def normalised_faithfulness(metric_circuit, metric_empty, metric_model):
    """0 = no better than ablating everything, 1 = as good as the full model."""
    # BEGIN SOLUTION
    return (metric_circuit - metric_empty) / (metric_model - metric_empty)
    # END SOLUTION


# %%
checks.normalised_faithfulness(normalised_faithfulness)

# %% [markdown]
# The same circuit under the three ablations (the library does the hooking, batched):

# %%
print(f"{'ablation':>10} {'full':>8} {'empty':>8} {'circuit':>8} {'faithful':>9} {'KL faithful':>12}")
by_kind = {}
for kind in ("mean", "resample", "zero"):
    result, ends = evaluate_circuit(model, task, circuit, kind=kind)
    by_kind[kind] = result
    assert abs(normalised_faithfulness(result.metric, ends.ablated_all, ends.full) - result.faithfulness) < 1e-6
    print(f"{kind:>10} {ends.full:8.3f} {ends.ablated_all:8.3f} {result.metric:8.3f} {result.faithfulness:9.2f} {result.kl_faithfulness:12.2f}")
    assert ends.full > ends.ablated_all, f"{kind}-ablating every head should break the task"

# %% [markdown]
# ## 2. Table 4: the circuit against its alternatives
#
# The paper's check on IOI (GPT-2 small, logit difference): full model 3.55, everything
# corrupted −3.55, the 26-head known circuit 4.11, the SAE circuit (40 heads) 3.62, a random
# 40-head set −2.23. The same table for this model and task. A circuit beats random heads only
# when its faithfulness lies more than two sd above theirs (`saekit.scoring.verdict`); the cell
# prints each circuit's verdict. On toy-4l the known induction circuit (three heads that matter
# one at a time under patching) keeps no more of the metric than random heads, because mean
# ablation also removes the previous-token heads it needs (section 5 finds them with ACDC); the
# cell says so rather than stopping.

# %%
table = circuit_table(model, task, scores, ground_truth=truth, top_k=size, n_random=N_RANDOM, seed=SEED)
rows = [("full model", table.full), ("everything ablated", table.ablated_all)]
if table.ground_truth_circuit is not None:
    rows.append((f"known circuit ({table.ground_truth_circuit.n_heads} heads)", table.ground_truth_circuit.metric))
rows += [(f"SAE circuit ({size} heads)", table.found_circuit.metric),
         (f"random {size} heads (mean ± sd of {N_RANDOM})", table.random_circuit.metric_mean)]
print(f"{TASK} on {MODEL}, {table.ablation} ablation, metric {table.metric_name}")
for name, metric in rows:
    print(f"  {name:<42} {metric:8.3f}")
print(f"  random sd {table.random_circuit.metric_std:.3f}")
empty = (0.0, "an empty circuit (every head ablated)")
if table.ground_truth_circuit is not None:
    known = verdict(table.ground_truth_circuit.faithfulness, table.random_circuit.faithfulnesses,
                    "The known circuit's faithfulness", f"random {size}-head circuits", floor=empty)
    print(known.sentence)
    if not known.beats:
        print(f"The known {TASK} circuit is not faithful here, so this table cannot tell a good found "
              f"circuit from a bad one on this task: a ground truth must itself beat random heads.")
found = verdict(table.found_circuit.faithfulness, table.random_circuit.faithfulnesses,
                "The SAE circuit's faithfulness", f"random {size}-head circuits", floor=empty)
print(found.sentence)

# %% [markdown]
# What do the SAE circuit's heads do? Their attention patterns (averaged over one template's
# prompts) and every head's direct logit attribution, positives beside negatives, with the
# circuit outlined; roles where the model's ground truth records them (`saekit.heads`).

# %%
roles = ground_truth_roles(MODEL, TASK) if truth is not None else None
attention_figure, attribution_figure = plot_circuit_heads(model, task, circuit, roles)
assert len(attention_figure.axes) >= int(circuit.sum()), "one attention panel per circuit head"

# %% [markdown]
# ## 3. Faithfulness curves
#
# Add heads one at a time — in the SAE's score order, or in random order — and ablate the rest.
# A good ranking climbs towards 1 quickly; random orders climb only when most heads are back.

# %%
assert CURVE_POINTS >= 2, f"CURVE_POINTS={CURVE_POINTS}: a curve needs at least its two ends (0 and all heads)"
total = n_layers * n_heads
ks = torch.linspace(0, total, CURVE_POINTS).round().int().unique().tolist()
curves = faithfulness_curves(model, task, scores, n_random=N_RANDOM, seed=SEED, ks=ks)
score_curve = curves.normalised(curves.score_metric)
random_curves = torch.tensor([curves.normalised(metric) for metric in curves.random_metric])
plot_faithfulness_curves(curves, label="SAE score order", title=f"{TASK} on {MODEL}: heads added in score vs random order")
assert abs(score_curve[0]) < 1e-6 and abs(score_curve[-1] - 1) < 1e-4, "0 heads = everything ablated, all heads = full model"
area = verdict(sum(score_curve), random_curves.sum(1), "The area under the SAE order's curve", "random orders")
print(area.sentence)

# %% [markdown]
# ## 4. Explore the threshold
#
# Move the slider to change how many top-scoring heads form the circuit; the grid shows the
# circuit (known circuit heads outlined) and the title its faithfulness, computed on a few
# prompts. (Needs a live kernel; the static figure under the slider shows where it starts.)

# %%
small = task.subset(slice(0, min(32, task.n_pairs)))
explore_threshold(scores, lambda mask: evaluate_circuit(model, small, mask)[0].faithfulness, truth=truth)

# %% [markdown]
# ## 5. Baselines and their cost
#
# The SAE method needs one forward pass per prompt plus a tiny SAE. The classic alternatives pay
# per head (activation patching: one pass over the task per head) or per gradient (attribution
# patching, HISP: forward + backward). `acdc` is ACDC with heads as the nodes
# (`saekit.ablation.prune_heads`): from the last layer to the first, each head is ablated for good
# unless that moves the faithfulness by at least a threshold, so it costs one pass per head *in
# sequence*, for every threshold of a sweep. On a toy model all are fast; on GPT-2 small the
# difference is seconds against minutes, and ACDC on edges instead of heads takes hours per sweep.
#
# On toy-4l the known circuit comes from per-head resample patching of `hook_z`, the very rule
# of `activation_patching`, so that baseline agrees with the known circuit by construction (up
# to the prompts it runs on): read its AUC as a check, not as a competitor's score.
#
# ACDC also keeps heads that single-head patching cannot see: heads whose input is the same on a
# positive and its negative (previous-token heads, say) change nothing when patched, yet mean
# ablation removes what they carry. That is why its circuits are larger than the known ones.
#
# The last four rows are **trivial baselines**: no gradient, no ablation, one forward pass at
# most. `head_norm` ranks heads by how much they write (the mean norm of the same head vectors
# the SAE reads); `mean_difference` by how far a head's mean vector moves between positives and
# negatives, `‖μ₊ − μ₋‖`; `probe` by how well a logistic regression, cross-validated, tells a
# head's positive vectors from its negative ones (0.5 is chance); `layer_index` by depth alone,
# later heads first. A method whose AUC does not beat these has found nothing on this model that
# a head's size, its class information or its depth did not already say.

# %%
aucs = {"SAE codes": roc_auc(scores, truth) if truth is not None else float("nan")}
seconds = {"SAE codes": sae_seconds}
baseline_scores, baseline_results = {}, {}
for name, method in BASELINES.items():
    baseline = method(model, task, threshold=ACDC_THRESHOLD) if name == "acdc" else method(model, task)
    baseline_results[name] = baseline
    assert baseline.scores.shape == (n_layers, n_heads)
    baseline_scores[name] = baseline.scores
    aucs[name] = roc_auc(baseline.scores, truth) if truth is not None else float("nan")
    seconds[name] = baseline.seconds
print(f"{'method':>22} {'seconds':>8} {'ROC AUC':>8}")
for name in aucs:
    if name == TRIVIAL_BASELINES[0]:
        print(f"{'trivial baselines':>22}")
    print(f"{name:>22} {seconds[name]:8.2f} {aucs[name]:8.3f}")
if truth is not None:
    best_trivial = max(TRIVIAL_BASELINES, key=aucs.get)
    side = "above" if aucs["SAE codes"] > aucs[best_trivial] else "not above"
    print(f"best trivial ranking: {best_trivial} (AUC {aucs[best_trivial]:.3f}); SAE codes "
          f"{aucs['SAE codes']:.3f}, {side} it at seed {SEED} (one seed: compare over seeds to conclude)")

panels = {"SAE codes": scores, **baseline_scores}
n_columns = 3
n_rows = -(-len(panels) // n_columns)
panel_size = (max(4.5, 0.55 * n_heads + 2), max(3.0, 0.45 * n_layers + 1.4))
fig, axes = plt.subplots(n_rows, n_columns, figsize=(n_columns * panel_size[0], n_rows * panel_size[1]),
                         layout="constrained", squeeze=False)
for ax, (name, grid) in zip(axes.flat, panels.items()):
    auc_text = f", AUC {aucs[name]:.2f}" if truth is not None else ""
    plot_head_grid(grid, title=f"{name}{auc_text}", label="score", highlight=truth, annotate=False, ax=ax)
for ax in axes.flat[len(panels):]:
    ax.set_visible(False)

# %% [markdown]
# The ACDC circuit itself, at one threshold: every head it removed moved the faithfulness by
# less than the threshold, so the circuit stays within (heads removed × threshold) of the full
# model. Compare its size with the known circuit's.

# %%
pruned = baseline_results["acdc"].pruned  # prune_heads(model, task, ACDC_THRESHOLD), run by the acdc baseline
removed = n_layers * n_heads - pruned.circuit.n_heads
print(f"ACDC (threshold {ACDC_THRESHOLD}) keeps {pruned.circuit.n_heads} heads, faithfulness {pruned.circuit.faithfulness:.2f}")
if truth is not None:
    print(f"{len(truth & set(pruned.circuit.heads))} of the {len(truth)} known circuit heads are among them")
assert abs(pruned.circuit.faithfulness - 1) <= ACDC_THRESHOLD * removed + 1e-4
plot_head_grid(pruned.effects.abs(), title=f"ACDC: faithfulness lost when tested ({pruned.circuit.n_heads} heads kept)",
               label="|effect|", highlight=pruned.circuit.heads, highlight_label="ACDC circuit");

# %% [markdown]
# ## Summary
#
# - Ablate per head at `hook_z`; mean ablation is the default, zero ablation overstates.
# - Normalised faithfulness puts circuits on one scale; compare with random circuits of the same size.
# - A faithfulness curve tests the whole ranking, not one cut.
#
# Next: **06 · Your own task**.
