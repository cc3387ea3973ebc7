# %% [markdown]
# # 09 · Supervised dictionaries: what the heads hold about known variables, and do SAEs see it?
#
# **Learning objectives**
#
# - build a supervised feature dictionary (Makelov, Lange & Nanda 2024) from a task's known
#   variables: one centred conditional mean per value, per head;
# - judge it on held-out prompts against a shuffled-label chance level, and find the heads that
#   carry each variable;
# - ask of every SAE architecture two questions about what its latents mean: are its decoder
#   directions the supervised features, and does a head's integer code say the variable's value?
#
# **Estimated time:** 30 minutes (1 exercise). Runs in about 50 s on one CPU core (measured:
# papermill on its defaults, kernel start included).
#
# The SAE method never looks at what a head *means*: it trains an unsupervised dictionary and
# counts codes. A supervised dictionary starts from the other end. Each prompt of a task comes
# with variables whose values we know (IOI's indirect object, the template it was written
# from), so for each variable and value we can average the head vectors of the prompts with that
# value. The difference from the head's overall mean is the **supervised feature**
# `u[v, h] = E[x_h | variable = v] − E[x_h]`, and `E[x_h] + Σ_variables u` reconstructs a head
# vector from the variables alone. Where that reconstruction explains a head well, the head
# carries the variable; a good SAE should then have a latent along `u`, and a code that changes
# with the value. On a test-bed whose circuit heads were trained to carry a task's variables
# (`saekit zoo train --recipe testbed`), the supervised features are the ground truth of what
# the circuit computes.

# %% tags=["parameters"]
MODEL = "toy-4l"
TASK = "ioi"  # "ioi", "greater-than", "docstring" or "induction"
SEED = 0
N_PAIRS = 400  # the first half fits the dictionaries, the second half judges them
REDUCTION = "last"  # the answer position, where a head must carry the answer; "mean" is the paper's
N_SHUFFLES = 20  # label shuffles behind each chance level
ARCHITECTURES = None  # None: every architecture in saekit.sae.ARCHITECTURES, or e.g. ["relu", "topk"]

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import torch

import saekit
from saekit.activations import head_activations
from saekit.codes import head_codes
from saekit.course import checks, use_solution
from saekit.discovery import paper_config
from saekit.errors import TaskError
from saekit.sae import ARCHITECTURES as REGISTRY
from saekit.sae import train_sae
from saekit.sae.metrics import reconstruction_metrics
from saekit.supervised import (
    code_information,
    decoder_directions,
    explained_variance,
    feature_alignment,
    fit_supervised_dictionary,
    task_variables,
)
from saekit.scoring import verdict
from saekit.tasks import make_task
from saekit.tasks.ground_truth import ground_truth_heads, heads_to_mask

torch.set_num_threads(1)  # the SAE's small matrices gain nothing from more threads
architectures = sorted(REGISTRY) if ARCHITECTURES is None else [ARCHITECTURES] if isinstance(ARCHITECTURES, str) else list(ARCHITECTURES)
model = saekit.load_model(MODEL)
task = make_task(TASK, model, n_pairs=N_PAIRS, seed=SEED)
activations = head_activations(model, task, reduction=REDUCTION, progress=False)
n_layers, n_heads = activations.n_layers, activations.n_heads
variables = task_variables(task)
fit, held_out = slice(0, N_PAIRS // 2), slice(N_PAIRS // 2, N_PAIRS)
try:
    truth = heads_to_mask(ground_truth_heads(MODEL, TASK), n_layers, n_heads).flatten()
except TaskError as err:
    truth = None
    print("No ground truth: circuit heads are not marked.", err)
for i in range(3):
    answer = model.tokenizer.convert_ids_to_tokens(int(variables["answer"][i]))
    print(f"{task.positive_prompts[i]!r}: answer {answer!r}, template {int(variables['template'][i])}")
for name, labels in variables.items():
    print(f"{name}: {len(labels[fit].unique())} values in the fitting half")

# %% [markdown]
# ## 1. A supervised feature is a centred conditional mean
#
# `task_variables` gives every contrastive task two variables: `answer` (the token id of the
# right answer: IOI's indirect object, docstring's next argument, induction's repeated word,
# greater-than's first later year, so its start year) and `template`. You can add your own: any
# integer label per prompt works, for instance IOI's subject name or the order of its names.
#
# ### Exercise 1 — the supervised features of one head (⭐, ~5 min)
#
# `vectors` is `[n, d]` (one head's write on n prompts), `labels` is `[n]` (a variable's value on
# each). Return `[n_values, d]`: for each value, in sorted order, the mean of its vectors minus
# the mean of all vectors.

# %%
def supervised_features(vectors, labels):
    """Per value of labels (sorted), the mean of its vectors minus the mean of all vectors."""
    import torch

    # BEGIN SOLUTION
    values, inverse = labels.unique(return_inverse=True)
    sums = vectors.new_zeros(len(values), vectors.shape[1]).index_add_(0, inverse, vectors)
    counts = torch.bincount(inverse, minlength=len(values))
    return sums / counts[:, None] - vectors.mean(0)
    # END SOLUTION


# %%
checks.supervised_features(supervised_features)

# %% [markdown]
# The library fits every head and variable at once; on the first head yours gives the same
# features:

# %%
fitting = {name: labels[fit] for name, labels in variables.items()}
judging = {name: labels[held_out] for name, labels in variables.items()}
dictionary = fit_supervised_dictionary(activations.positive[fit], fitting)
mine = supervised_features(activations.positive[fit][:, 0].float(), variables["answer"][fit])
assert torch.allclose(mine, dictionary.features["answer"][:, 0], atol=1e-4)
print({name: tuple(features.shape) for name, features in dictionary.features.items()}, "(values, heads, d)")

# %% [markdown]
# ## 2. Which heads carry which variable: held-out explained variance against chance
#
# A dictionary fitted on a few prompts per value explains its own prompts partly by their noise,
# so it is judged on the other half. There a head with nothing to say about a variable scores
# about zero or a little below (its fitted features are noise, and the held-out mean is not the
# fitted one). The chance level is the same fit with the labels shuffled: a head carries a
# variable when its held-out explained variance is above its shuffled scores' mean + 2 sd
# (`scoring.verdict`, the rule of every notebook, head by head).

# %%
generator = torch.Generator().manual_seed(SEED)


def against_chance(value, shuffles):
    """saekit's one rule (`scoring.verdict`, 2 sd) in three words."""
    outcome = verdict(float(value), shuffles, "value", "shuffles").outcome
    return {"above": "above chance", "within": "no better than chance", "below": "below chance"}[outcome]


def held_out_explained(names, shuffle=False):
    """Per head, the held-out explained variance of a dictionary of ``names`` (labels shuffled in fitting if asked)."""
    labels = {name: fitting[name][torch.randperm(len(fitting[name]), generator=generator)] if shuffle else fitting[name]
              for name in names}
    fitted = fit_supervised_dictionary(activations.positive[fit], labels)
    return explained_variance(fitted, activations.positive[held_out], {name: judging[name] for name in names})


explained = {name: held_out_explained([name]) for name in variables}
chance = {name: torch.stack([held_out_explained([name], shuffle=True) for _ in range(N_SHUFFLES)]) for name in variables}
carriers = {name: torch.tensor([verdict(float(value), shuffles, "value", "shuffles").beats for value, shuffles in zip(explained[name], chance[name].T)])
            for name in variables}
for name in variables:
    order = explained[name].argsort(descending=True)[:4].tolist()
    best = ", ".join(f"L{h // n_heads}H{h % n_heads} {explained[name][h]:.2f}" for h in order)
    print(f"{name}: {int(carriers[name].sum())} of {len(carriers[name])} heads above chance; highest: {best}")
    if truth is not None:
        print(f"   mean over the circuit's heads {explained[name][truth].mean():.2f}, over the others {explained[name][~truth].mean():.2f}")
assert all((explained[name] <= 1).all() and (chance[name] <= 1).all() for name in variables)
assert all(chance[name].mean() < 0.01 for name in variables)  # shuffled labels: about zero or a little below

# %%
fig, axes = plt.subplots(1, len(variables), figsize=(4.5 * len(variables), 3.2), layout="constrained")
for ax, name in zip(axes, variables):
    image = ax.imshow(explained[name].reshape(n_layers, n_heads), cmap="viridis", vmin=0, vmax=max(0.05, float(explained[name].max())))
    for flat in carriers[name].nonzero().flatten().tolist():
        ax.text(flat % n_heads, flat // n_heads, "•", ha="center", va="center", color="white")
    if truth is not None:
        for flat in truth.nonzero().flatten().tolist():
            ax.add_patch(plt.Rectangle((flat % n_heads - 0.5, flat // n_heads - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    ax.set(title=f"{name}: held-out explained variance", xlabel="head", ylabel="layer")
    fig.colorbar(image, ax=ax)
fig.suptitle(f"{TASK} on {MODEL} (reduction: {REDUCTION}): • above chance" + (", red: the circuit" if truth is not None else ""));

# %% [markdown]
# ## 3. Do an SAE's latents and codes match the supervised features?
#
# Each architecture is trained once, with its defaults, on the paper's draw of head vectors
# (`paper_config(TASK).sae_examples` prompts, positives and negatives, every head), as
# `discover` trains it. At the head that carries `answer` best, two questions:
#
# - **alignment**: for each of that head's `answer` features, the largest cosine with one of the
#   SAE's decoder directions (`decoder_directions`: for signed SAEs the negated ones too),
#   averaged over the features. An SAE trained on these vectors has directions along whatever
#   the vectors commonly do, so even features of a meaningless variable line up with it
#   somewhat: the chance level is the alignment of the same SAE with the features of a shuffled
#   `answer` (the same values and counts, assigned at random); above chance means more than
#   2 sd above the shuffles' mean (`scoring.verdict`, the rule of every notebook).
# - **code information**: the adjusted mutual information between the head's codes on the
#   held-out positives and their `answer` (1: the code says the value exactly; 0: what chance
#   gives). Chance is again a label shuffle, mean + 2 sd.

# %%
answer_head = int(explained["answer"].argmax())
config = paper_config(TASK)
examples = torch.cat([activations.positive, activations.negative])
drawn = torch.randperm(len(examples), generator=torch.Generator().manual_seed(SEED))[: config.sae_examples]
samples = examples[drawn].flatten(0, 1)
labels = judging["answer"]

shuffled_dictionaries = [
    fit_supervised_dictionary(activations.positive[fit], {"answer": fitting["answer"][torch.randperm(len(fitting["answer"]), generator=generator)]})
    for _ in range(N_SHUFFLES)
]


def answer_alignment(supervised, directions):
    """Mean over the answer head's features of their best cosine with ``directions``."""
    return float(feature_alignment(supervised, directions)["answer"][:, answer_head].mean())


rows = []
for name in architectures:
    sae = train_sae(samples, replace(config.sae, architecture=name, seed=SEED))
    directions = decoder_directions(sae)
    alignment = answer_alignment(dictionary, directions)
    chance_alignment = torch.tensor([answer_alignment(shuffled, directions) for shuffled in shuffled_dictionaries])
    codes = head_codes(sae, activations.positive[held_out])
    information = code_information(codes, labels)
    shuffled = torch.stack([code_information(codes[:, [answer_head]], labels[torch.randperm(len(labels), generator=generator)])[0]
                            for _ in range(N_SHUFFLES)])
    rows.append((name, reconstruction_metrics(sae, samples)["explained_variance"], alignment, float(chance_alignment.mean()),
                 against_chance(alignment, chance_alignment), information, against_chance(information[answer_head], shuffled)))
    assert chance_alignment.mean() > 0  # meaningless features line up with the SAE somewhat: chance is not zero
    assert 0 <= alignment <= 1 + 1e-5 and (information <= 1 + 1e-6).all()

print(f"answer head L{answer_head // n_heads}H{answer_head % n_heads} (held-out explained variance {explained['answer'][answer_head]:.2f})")
print(f"{'architecture':<15} {'SAE EV':>6}  {'alignment (shuffled)':<38} {'code AMI':<30} best AMI (head)")
for name, sae_ev, alignment, chance_mean, alignment_verdict, information, code_verdict in rows:
    best = int(information.argmax())
    print(f"{name:<15} {sae_ev:>6.3f}  {alignment:.2f} ({chance_mean:.2f}) {alignment_verdict:<26} "
          f"{information[answer_head]:.3f} {code_verdict:<24} {information[best]:.3f} (L{best // n_heads}H{best % n_heads})")

# %% [markdown]
# How to read it: the three columns answer different questions, and none implies another.
# `SAE EV` is how well the SAE reconstructs its training vectors; alignment, whether it has a
# latent along the supervised features; code AMI, whether the single code the method keeps says
# the value. The method itself needs less than any of them, only codes that *differ* between
# positives and negatives (notebooks 03–04), so an SAE can serve it without matching the
# supervised features, and match them without serving it. Change `REDUCTION` to `"mean"` (the
# paper's) and compare section 2's `answer` row: the paper's head vectors average every
# position, while the answer is needed only at the last.
#
# **On a test-bed model.** `MODEL` can be a folder written by `saekit zoo train --recipe
# testbed --out DIR`. Its ground truth records each circuit head with its role, and training
# made the circuit's last role decide the answer (its output, swapped in from another prompt,
# must make the model give that prompt's answer), so the answer head of section 2 is worth
# comparing with the circuit; heads that read the circuit's output may carry the answer too.
# `docs/testbed.md` says how faithful those circuits are at each seed; read it before reading
# anything into these numbers.
