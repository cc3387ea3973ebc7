# %% [markdown]
# # 08 · When does the method work? The premise, counterfactual edits and trivial baselines
#
# **Learning objectives**
#
# - say what the SAE-codes method actually detects (heads that carry class information) and
#   why that finds a circuit only where the information is concentrated in it;
# - measure a head's class information without any SAE (d′ and a probe) and read the premise
#   diagnostic's table, figure and verdict;
# - test the diagnosis with counterfactual edits of live activations: remove class information
#   from some heads, or keep only a change of size, and rerun the unchanged method;
# - compare the method with trivial baselines (head norm, ‖μ₊ − μ₋‖, layer index) before
#   believing any AUC.
#
# **Estimated time:** 35 minutes (1 exercise). Runs in about 22 s on one CPU
# core (measured: papermill on its defaults, kernel start included).
#
# The method (notebooks 02–04) gives each (example, head) one code, the index of its SAE's
# strongest latent, and scores a head by the codes it shows on positives and never on
# negatives. Nothing in that asks whether a head is *in the circuit*: a head scores high when its
# writes on the two classes differ. So the method finds the circuit exactly when the circuit's
# heads are the ones whose writes differ — the **premise** this notebook tests.

# %% tags=["parameters"]
MODEL = "toy-4l"
TASK = "ioi"  # "ioi", "greater-than", "docstring" or "induction"
SEED = 0  # first seed; seeds SEED .. SEED + N_SEEDS - 1 are run
N_SEEDS = 3  # each seed trains one SAE per run of the method (five runs)
N_PAIRS = 250
SIZE_FACTOR = 2.0  # section 3c: circuit heads' negatives become this many times a positive

# %%
from dataclasses import replace

import torch

import saekit
from saekit.activations import head_activations
from saekit.baselines import head_norm_scores, layer_index_scores, mean_difference_scores
from saekit.codes import head_codes
from saekit.course import checks, use_solution
from saekit.diagnose import (
    INFORMATIVE_PROBE_ACCURACY,
    d_prime,
    diagnose,
    keep_only_size_change,
    remove_class_information,
)
from saekit.discovery import discover, paper_config
from saekit.sae import train_sae
from saekit.scoring import chance_aucs, roc_auc, verdict
from saekit.tasks import make_task
from saekit.tasks.ground_truth import ground_truth_heads
from saekit.viz import plot_premise

torch.set_num_threads(1)  # the SAE's small matrices gain nothing from more threads
model = saekit.load_model(MODEL)
task = make_task(TASK, model, n_pairs=N_PAIRS, seed=SEED)
activations = head_activations(model, task, progress=False)  # the paper's head vectors, taken once
truth = ground_truth_heads(MODEL, TASK)  # the counterfactuals need to know which heads are the circuit
shape = (activations.n_layers, activations.n_heads)
every_head = {(layer, head) for layer in range(shape[0]) for head in range(shape[1])}
others = every_head - truth
seeds = range(SEED, SEED + N_SEEDS)
print(f"{TASK} on {MODEL}: {N_PAIRS} pairs, {len(every_head)} heads, {len(truth)} in the circuit; seeds {list(seeds)}")


def method_auc(head_vectors, code_kind="argmax"):
    """The unchanged method (paper config) on the given head vectors: ROC AUC per seed."""
    config = paper_config(TASK, code_kind=code_kind)
    result = discover(model, task, config, seeds=seeds, ground_truth=truth, activations=head_vectors, progress=False)
    return torch.tensor(result.auc_per_seed)


chance = chance_aucs(truth, *shape, seed=SEED)  # ROC AUCs of random rankings of these heads
WHERE = {"above": "above chance", "within": "no better than chance", "below": "below chance"}


def summary(aucs):
    """'mean ± sd' over seeds (or draws), and where the mean lies against random rankings by the
    rule every notebook uses (`saekit.scoring.verdict`: more than two sd above them beats chance)."""
    return f"{aucs.mean():.2f} ± {aucs.std():.2f}", WHERE[verdict(float(aucs.mean()), chance, "", "").outcome]


# %% [markdown]
# ## 1. The method on the real activations
#
# First the paper's method as it is, on this model and task, scored against the known circuit
# (ROC AUC: 1 ranks every circuit head first, 0.5 is chance). Each seed draws its own SAE
# training examples and initialisation.

# %%
original = method_auc(activations)
text, where = summary(original)
print(f"The method's ROC AUC: {text} over {N_SEEDS} seeds ({where}).")
print(verdict(float(original.mean()), chance, "Its mean", "random rankings").sentence)

# %% [markdown]
# ## 2. The premise diagnostic
#
# How much class information does a head carry, measured without any SAE? Two numbers per head,
# from the same head vectors:
#
# - **d′** = ‖μ₊ − μ₋‖ / s: the distance between the class means in units of the pooled
#   within-class spread s = sqrt((tr Σ₊ + tr Σ₋) / 2), where tr Σ is a class's total variance
#   (the mean squared distance of its vectors from their mean). Rescaling a head leaves d′
#   unchanged: it says how *separable* the classes are, not how loud the head is.
# - **probe accuracy**: cross-validated accuracy of a logistic regression telling the head's
#   positive vectors from its negative ones.
#
# ### Exercise — d′ of one head (⭐⭐, ~10 min)
#
# `positive` and `negative` are one head's vectors, `[n_pairs, d]` each. Return d′ as a float.
# Use each class's variance about its own mean, averaged over its vectors (divide by n, not
# n − 1).

# %%
def head_d_prime(positive, negative):
    """‖μ₊ − μ₋‖ / sqrt((tr Σ₊ + tr Σ₋) / 2) for one head."""
    # BEGIN SOLUTION
    gap = (positive.mean(0) - negative.mean(0)).norm()
    total_variance = positive.var(0, correction=0).sum() + negative.var(0, correction=0).sum()
    return float(gap / (total_variance / 2).sqrt())
    # END SOLUTION


# %%
checks.head_d_prime(head_d_prime)

# %% [markdown]
# `saekit.diagnose.d_prime` does the same for every head at once; your function agrees with it
# on this model's heads. `diagnose` adds the probe, summarises, and gives the verdict: with a
# ground truth, whether d′ alone ranks the circuit heads first (its ROC AUC against the circuit).

# %%
library = d_prime(activations)
for flat in range(len(library)):
    mine = head_d_prime(activations.positive[:, flat].float(), activations.negative[:, flat].float())
    assert abs(mine - float(library[flat])) <= 1e-4 * max(1.0, abs(mine)), (flat, mine, float(library[flat]))

diagnosis = diagnose(model, task, truth, activations=activations, seed=SEED, progress=False)
plot_premise(diagnosis, title=f"{TASK} on {MODEL}: class information per head");
order = diagnosis.d_prime.flatten().argsort(descending=True)
print(f"{'head':>5} {'circuit':>7} {'d′':>6} {'probe':>6} {'cos(μ₊,μ₋)':>10} {'‖μ₊‖/‖μ₋‖':>10}   (12 highest d′)")
for flat in order[:12].tolist():
    layer, head = divmod(flat, shape[1])
    print(f"{layer:>3}.{head:<1} {'yes' if (layer, head) in truth else '':>7} {float(diagnosis.d_prime[layer, head]):6.2f} "
          f"{float(diagnosis.probe_accuracy[layer, head]):6.2f} {float(diagnosis.cosine[layer, head]):10.3f} "
          f"{float(diagnosis.norm_ratio[layer, head]):10.2f}")

# %% [markdown]
# Read the figure as the method would: it can only rank a head high if the head's two classes
# differ. Where grey points (heads outside the circuit) sit as far right and as high as red
# ones, the method has no way to prefer the circuit. Ringed points are heads whose mean write
# keeps its direction and changes only its size (cosine ≥ 0.99): argmax codes see the *which*,
# not the *how much*, so such heads are hard for them to see (notebook 03, docs/method.md §4).

# %%
informative = diagnosis.probe_accuracy >= INFORMATIVE_PROBE_ACCURACY
in_circuit = torch.zeros(shape, dtype=torch.bool)
for layer, head in truth:
    in_circuit[layer, head] = True
n_inside, n_outside = int((informative & in_circuit).sum()), int((informative & ~in_circuit).sum())
print(f"Heads with probe accuracy ≥ {INFORMATIVE_PROBE_ACCURACY}: {n_inside} of {len(truth)} circuit heads, "
      f"{n_outside} of {len(others)} other heads.")
print(f"Verdict on these pairs (ROC AUC of d′ {diagnosis.auc_d_prime:.2f}): {diagnosis.verdict}.")
assert n_inside + n_outside == diagnosis.n_informative

# %% [markdown]
# That is one draw of prompt pairs. The same diagnosis on other draws (task seeds SEED ..
# SEED + N_SEEDS − 1) shows how much its numbers move:

# %%
tasks = [task] + [make_task(TASK, model, n_pairs=N_PAIRS, seed=seed) for seed in seeds[1:]]
draws = [activations] + [head_activations(model, other, progress=False) for other in tasks[1:]]
diagnoses = [diagnosis] + [diagnose(model, other, truth, activations=draw, seed=SEED, progress=False)
                           for other, draw in zip(tasks[1:], draws[1:])]
auc_d_prime = torch.tensor([one.auc_d_prime for one in diagnoses])
auc_probe = torch.tensor([one.auc_probe for one in diagnoses])
keys = {one.verdict_key for one in diagnoses}
agreement = "the same verdict on every draw" if len(keys) == 1 else f"verdicts differ between draws: {sorted(keys)}"
print(f"Over {len(draws)} draws of {N_PAIRS} pairs: ROC AUC of d′ against the circuit {summary(auc_d_prime)[0]}, "
      f"of the probe {summary(auc_probe)[0]}; {agreement}.")
assert (len(keys) == 1) == (agreement == "the same verdict on every draw")

# %% [markdown]
# ## 3. Counterfactuals: edit the activations, rerun the unchanged method
#
# If the method detects class information, then moving the class information should move its
# AUC, with the model and the method untouched. Each edit acts on the head vectors only:
#
# - **(a)** remove class information from every head *outside* the circuit: each of their
#   negative vectors becomes the positive vector of another pair, so their two sides are draws
#   from one distribution (`remove_class_information`). Only the circuit carries it now.
# - **(b)** remove it from the *circuit* heads instead: only the others carry it.
# - **(c)** start from (a), then let the circuit heads differ between the classes *only in
#   size*: each negative becomes another pair's positive times `SIZE_FACTOR`
#   (`keep_only_size_change`). Same direction, `SIZE_FACTOR` times as loud — scored with the paper's argmax
#   codes and with `code_kind="argmax_level"`, which adds the winning latent's activation level
#   to the code.

# %%
only_circuit = remove_class_information(activations, others, seed=SEED)
only_others = remove_class_information(activations, truth, seed=SEED)
size_only = keep_only_size_change(only_circuit, truth, scale=SIZE_FACTOR, seed=SEED)

# %%
runs = {
    "(a) only the circuit carries class information": method_auc(only_circuit),
    "(b) only the other heads carry it": method_auc(only_others),
    "(c) circuit changes only in size, argmax codes": method_auc(size_only),
    "(c) circuit changes only in size, argmax_level codes": method_auc(size_only, "argmax_level"),
}
print(f"{'activations':<54} ROC AUC (mean ± sd, {N_SEEDS} seeds)")
for name, aucs in {"real activations": original, **runs}.items():
    text, where = summary(aucs)
    print(f"{name:<54} {text}  ({where})")

# %%
a, b, c_argmax, c_level = runs.values()
print(f"(a) With class information only in the circuit, the unchanged method scores {summary(a)[0]}: near 1.")
print(f"(b) With it only outside the circuit, the method scores {summary(b)[0]}: near 0, "
      f"it ranks the circuit last.")
print(f"(c) With only a change of size left in the circuit, argmax codes score {summary(c_argmax)[0]}, "
      f"down {float(a.mean() - c_argmax.mean()):.2f} from (a) but {summary(c_argmax)[1]}; "
      f"argmax_level codes score {summary(c_level)[0]}, higher, and within 0.1 of (a) on average.")
assert a.mean() - a.std() >= 0.9
assert b.mean() + b.std() <= 0.2
assert c_argmax.mean() <= a.mean() - 0.05
assert summary(c_argmax)[1] == "above chance"
assert c_level.mean() > c_argmax.mean() and c_level.mean() >= a.mean() - 0.1

# %% [markdown]
# The same edits move the diagnostic's verdict, with no SAE involved: that is the check that its
# verdict means what it says.

# %%
verdicts = {
    "(a)": diagnose(model, task, truth, activations=only_circuit, seed=SEED, progress=False),
    "(b)": diagnose(model, task, truth, activations=only_others, seed=SEED, progress=False),
}
for name, edited in verdicts.items():
    print(f"{name} ROC AUC of d′ {edited.auc_d_prime:.2f}: {edited.verdict}.")
assert verdicts["(a)"].verdict_key == "holds"
assert verdicts["(b)"].verdict_key == "cannot_separate"

# %% [markdown]
# Why are argmax codes not *entirely* blind in (c)? Two reasons, both worth knowing. After edit
# (a) the heads outside the circuit show exactly the same set of vectors on both sides, so their
# node score is exactly 0, and a single code seen only on a circuit head's positives ranks it
# above all of them. And the SAE's biases make its argmax depend on a vector's size, so
# rescaling a vector changes some of its codes (measured below). Level codes turn the size itself into part of
# the code, which is why they recover the circuit where argmax codes lose part of it.

# %%
heads_outside = [layer * shape[1] + head for layer, head in sorted(others)]
for flat in heads_outside:
    positive_set = only_circuit.positive[:, flat].unique(dim=0)
    assert torch.equal(positive_set, only_circuit.negative[:, flat].unique(dim=0)), "after (a) both sides hold one set of vectors"
print(f"After (a), each of the {len(heads_outside)} heads outside the circuit shows the same set of vectors on both sides.")

# one SAE as discover trains it for seed SEED: the paper's settings, a few examples of the edited vectors
config = paper_config(TASK)
examples = torch.cat([size_only.positive, size_only.negative])
chosen = torch.randperm(len(examples), generator=torch.Generator().manual_seed(SEED))[: config.sae_examples]
sae = train_sae(examples[chosen].flatten(0, 1), replace(config.sae, seed=SEED))
circuit_vectors = activations.positive[:, [layer * shape[1] + head for layer, head in sorted(truth)]]
changed = float((head_codes(sae, circuit_vectors) != head_codes(sae, SIZE_FACTOR * circuit_vectors)).float().mean())
print(f"Scaling the circuit heads' positive vectors by {SIZE_FACTOR} changes the argmax code of {changed:.0%} of them "
      f"(one SAE, seed {SEED}).")
assert 0 < changed < 1

# %% [markdown]
#
# ## 4. Trivial baselines
#
# Before trusting any AUC, compare it with scores that need no SAE and no method at all
# (`saekit.baselines`, also in `saekit compare`), computed on the same draws of pairs as the
# diagnostic above (mean ± sd over draws):
#
# - **head norm**: the mean norm of the head's output over all examples ("how loud");
# - **‖μ₊ − μ₋‖**: the distance between the class means (d′ without the spread);
# - **layer index**: later layers first (the same on every draw).
#
# A method that does not beat them on a model has found nothing there that they do not. The
# method "beats" a baseline below when its mean AUC lies more than two sd above the baseline's
# AUCs over the draws (`saekit.scoring.verdict`, the rule of every notebook).

# %%
baselines = {"head norm": head_norm_scores, "‖μ₊ − μ₋‖": mean_difference_scores, "layer index": layer_index_scores}
for name, baseline in baselines.items():
    aucs = torch.tensor([
        roc_auc(baseline(model, other, **({} if baseline is layer_index_scores else {"activations": draw})).scores, truth)
        for other, draw in zip(tasks, draws)
    ])
    print(verdict(float(original.mean()), aucs, "The method's mean ROC AUC", f"{name}'s ROC AUCs").sentence)

# %% [markdown]
# ## 5. Try it
#
# - Run this notebook with `TASK = "induction"`: what does the diagnostic say there, which heads
#   does it name as size-only, and how does that square with the method's AUC in section 1?
# - Change `SIZE_FACTOR` to 0.5 (negatives half as loud) or 1.2 (a small change of size).
# - On your own model, run `saekit diagnose --model M --task T` *before* the method: it takes
#   seconds and says whether the method can work there.
#
# ## Summary
#
# - The SAE-codes method detects heads that carry class information; it finds a circuit only
#   where that information is concentrated in the circuit.
# - d′ and a probe measure it per head without an SAE; `saekit.diagnose` turns them into a
#   verdict, and counterfactual edits of the activations move both the method and the verdict.
# - Argmax codes see changes of direction, not of size; `code_kind="argmax_level"` adds the size.
# - Always report trivial baselines beside the method.
