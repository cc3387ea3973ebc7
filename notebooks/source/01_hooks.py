# %% [markdown]
# # 01 · Hooks: reading and editing what each attention head does
#
# **Learning objectives**
#
# - find a model's hook points and cache the activations you need (and only those);
# - get each head's output on its own: `hook_z`, and its write into the residual stream `z · W_O`;
# - reduce a prompt's positions to one vector without letting padding in;
# - write a hook that edits one head, and remove hooks safely even when something fails;
# - see what a head does: where it attends (its attention pattern) and what its write does to the
#   answer (direct logit attribution).
#
# **Estimated time:** 50 minutes (3 exercises). Runs in about 10 s on one CPU
# core (measured: papermill on its defaults, kernel start included).
#
# Everything saekit does rests on these operations: the SAE reads one vector per (prompt, head),
# and ablation replaces a head's `hook_z`. Doing them once by hand makes the library's choices
# (which hook, which reduction, why not the summed attention output) concrete.

# %% tags=["parameters"]
MODEL = "toy-4l"  # "gpt2-small" or "attn-only-4l" on a machine with the weights cached
TASK = "ioi"  # "ioi", "greater-than", "docstring" or "induction"
SEED = 0
N_PAIRS = 16  # prompts to look at; this notebook is about mechanics, not statistics

# %%
import torch

import saekit
from saekit.activations import head_activations
from saekit.course import checks, use_solution
from saekit.tasks import make_task

torch.set_grad_enabled(False)
model = saekit.load_model(MODEL)
task = make_task(TASK, model, n_pairs=N_PAIRS, seed=SEED)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
print(f"{MODEL}: {n_layers} layers x {n_heads} heads, d_model={model.cfg.d_model}, d_head={model.cfg.d_head}")
print("positive:", task.positive_prompts[0])
print("negative:", task.negative_prompts[0])

# %% [markdown]
# ## 1. Hook points
#
# A TransformerLens model names every intermediate activation and lets you read or replace it
# through a *hook point*. The names follow the computation: `blocks.L.attn.hook_q/k/v` (queries,
# keys, values per head), `hook_pattern` (attention weights), `hook_z` (each head's
# attention-weighted values, **before** the output projection), and `blocks.L.hook_attn_out`
# (the sum of all heads' outputs, after `W_O`).
#
# The per-head hooks are the ones circuit work needs: once the heads are summed into
# `hook_attn_out` you can no longer tell them apart.

# %%
attention_hooks = sorted(name for name in model.hook_dict if name.startswith("blocks.0.attn.hook_"))
print("\n".join(attention_hooks))
assert "blocks.0.attn.hook_z" in attention_hooks

# %% [markdown]
# `run_with_cache` runs the model once and keeps the activations. Caching everything for a large
# model costs a lot of memory, so pass `names_filter` and keep only what you need.

# %%
tokens = task.positive_tokens
logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
z_last_layer = cache[f"blocks.{n_layers - 1}.attn.hook_z"]
print("hook_z:", tuple(z_last_layer.shape), "= [batch, position, head, d_head]")
assert z_last_layer.shape == (N_PAIRS, tokens.shape[1], n_heads, model.cfg.d_head)
assert logits.shape[:2] == tokens.shape

# %% [markdown]
# ## 2. A head's write into the residual stream
#
# Head *h* of layer *L* adds `z[..., h, :] @ W_O[L, h]` to the residual stream. That
# d_model-wide vector is what the paper's SAE reads (`hook_result` in older TransformerLens).
# `model.W_O` has shape `[n_layers, n_heads, d_head, d_model]`.
#
# ### Exercise 1 — per-head writes (⭐⭐, ~10 min)
#
# Write `head_writes(z, W_O)` for one layer: `z` is `[batch, pos, n_heads, d_head]`, `W_O` is
# `[n_heads, d_head, d_model]`; return `[batch, pos, n_heads, d_model]`. Hint: `torch.einsum`.

# %%
def head_writes(z: torch.Tensor, W_O: torch.Tensor) -> torch.Tensor:
    """Each head's output projected into the residual stream, heads kept apart."""
    import torch

    # BEGIN SOLUTION
    return torch.einsum("bphd,hdm->bphm", z, W_O)
    # END SOLUTION


# %%
checks.head_writes(head_writes)

# %% [markdown]
# Summed over heads (plus the output bias `b_O`), the writes are exactly the attention layer's
# output. This is why we never ablate on `hook_attn_out`: there the heads are already mixed.

# %%
layer = n_layers - 1
_, cache = model.run_with_cache(tokens, names_filter=lambda name: name in (f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_attn_out"))
writes = head_writes(cache[f"blocks.{layer}.attn.hook_z"], model.W_O[layer])
summed = writes.sum(dim=2) + model.b_O[layer]
print("max |Σ heads + b_O − hook_attn_out| =", float((summed - cache[f"blocks.{layer}.hook_attn_out"]).abs().max()))
assert torch.allclose(summed, cache[f"blocks.{layer}.hook_attn_out"], atol=1e-4)

# %% [markdown]
# ## 3. From positions to one vector per prompt
#
# Prompts have different lengths, so the task pads them on the right; `task.lengths[i]` counts
# prompt *i*'s real tokens, BOS included. The paper averages each head's write over **all real
# positions including BOS**. Padding must never enter the mean: it would make a prompt's vector
# depend on how long the *other* prompts in the batch were.
#
# ### Exercise 2 — mean over real positions (⭐⭐, ~10 min)
#
# `values` is `[n, seq, n_heads, d]`, `lengths` is `[n]`. Return `[n, n_heads, d]`.

# %%
def masked_position_mean(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over each prompt's real positions (0 .. length-1); padding is ignored."""
    import torch

    # BEGIN SOLUTION
    real = torch.arange(values.shape[1]) < lengths[:, None]  # [n, seq]
    total = (values * real[:, :, None, None]).sum(dim=1)
    return total / lengths[:, None, None]
    # END SOLUTION


# %%
checks.masked_position_mean(masked_position_mean)

# %% [markdown]
# Now the whole per-head activation by hand, for every layer, and compared with the library.
# `head_activations` does the same with one trick: the projection is linear, so it averages `z`
# first and multiplies by `W_O` afterwards (cheaper: d_head instead of d_model per position).

# %%
_, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
by_hand = torch.stack(
    [masked_position_mean(head_writes(cache[f"blocks.{l}.attn.hook_z"], model.W_O[l]), task.lengths) for l in range(n_layers)],
    dim=1,
).flatten(1, 2)  # [n_pairs, n_layers * n_heads, d_model], head index = layer * n_heads + head
library = head_activations(model, task, activation="result", reduction="mean", progress=False)
print("by hand:", tuple(by_hand.shape), " library:", tuple(library.positive.shape))
assert torch.allclose(by_hand, library.positive, atol=1e-4)

# %% [markdown]
# Other reductions are one argument away: `reduction="last"` (the answer position only) and
# `"mean_no_bos"`. The last position sees the whole prompt but is one token's view; the mean
# captures what a head does throughout. Which one separates positives from negatives better is
# an empirical question you can test in notebook 04.

# %%
last = head_activations(model, task, reduction="last", progress=False)
print("last-position vectors:", tuple(last.positive.shape))
assert last.positive.shape == library.positive.shape

# %% [markdown]
# ## 4. Writing a hook
#
# A forward hook is a function `hook(activation, hook)`; whatever it returns replaces the
# activation. Here: silence one head by zeroing its `z`. (Zero ablation is off-distribution —
# a head never outputs exact zeros — which is why saekit defaults to *mean* ablation in
# notebook 05. It is the simplest edit to write, though.)
#
# ### Exercise 3 — a hook that zeroes one head (⭐, ~5 min)

# %%
def zero_head_hook(head: int):
    """A hook for ``blocks.L.attn.hook_z`` that sets head ``head``'s z to zero."""
    # BEGIN SOLUTION
    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    return hook
    # END SOLUTION


# %%
checks.zero_head_hook(zero_head_hook)

# %% [markdown]
# Which head matters most for the task? Zero each head in turn and see how the task metric on the
# positives moves (one forward pass per head — the expensive route the SAE method avoids).

# %%
clean_metric = task.metric_from_logits(model(tokens)).mean()
effects = torch.zeros(n_layers, n_heads)
for l in range(n_layers):
    for h in range(n_heads):
        with model.hooks(fwd_hooks=[(f"blocks.{l}.attn.hook_z", zero_head_hook(h))]):
            effects[l, h] = task.metric_from_logits(model(tokens)).mean() - clean_metric
print(f"clean metric {clean_metric:.2f}; biggest drop {effects.min():.2f} at head "
      f"{divmod(int(effects.argmin()), n_heads)}")

# %%
from saekit.viz import plot_head_grid

plot_head_grid(effects, title=f"{TASK}: metric change when one head is zeroed", label="Δ metric", cmap="RdBu_r");

# %% [markdown]
# ## 5. Removing hooks safely
#
# A hook that is left attached silently changes every later forward pass — a classic notebook
# bug, especially after an exception. Attach hooks with the `model.hooks(...)` context manager:
# they are removed when the block exits, **even if it raises**. (`model.reset_hooks()` removes
# any stragglers added with `add_hook`.)

# %%
def broken_hook(z, hook):
    raise RuntimeError("a bug inside a hook")


try:
    with model.hooks(fwd_hooks=[(f"blocks.0.attn.hook_z", broken_hook)]):
        model(tokens)
except RuntimeError as err:
    print("caught:", err)
after = task.metric_from_logits(model(tokens)).mean()
assert torch.allclose(after, clean_metric), "a hook leaked past the with-block"
print("after the exception the model is clean again: metric", float(after))

# %% [markdown]
# ## 6. What the heads do
#
# A score says *that* a head matters, not *what* it does. Two views read from the hooks above
# answer that. A head's **attention pattern** (`blocks.L.attn.hook_pattern`, `[batch, head,
# query, key]`) shows which earlier tokens each position reads from. Its **direct logit
# attribution** (DLA) is its write `z · W_O` at the answer position, divided by the final
# LayerNorm's scale and projected onto the task's answer direction `W_U[answer] − W_U[wrong]`:
# how far that head alone moves the logit difference.
#
# `attention_patterns` averages over prompts **aligned at their end**: the last row is always the
# answer position, and within one template each distance from the end is the same slot (tokens
# that differ between prompts, like the names, are shown in brackets). Below: every head, on the
# prompts of the first prompt's template. A head's previous-token score is the mean attention
# from each token to the one just before it.

# %%
from saekit.heads import attention_patterns, direct_logit_attribution
from saekit.viz import explore_heads, plot_attention_grid, plot_attention_pattern, plot_logit_attribution

template = int(task.template_ids[0])
every_head = attention_patterns(model, task, torch.ones(n_layers, n_heads, dtype=torch.bool), template=template)
previous_token_score = every_head.pattern.diagonal(offset=-1, dim1=1, dim2=2).mean(-1)  # one per head
previous_head = every_head.heads[int(previous_token_score.argmax())]
width = every_head.pattern.shape[-1]
uniform = (1 / torch.arange(2, width + 1).float()).mean()  # attention spread evenly over the tokens so far
print(f"{every_head.description}: head {previous_head[0]}.{previous_head[1]} puts "
      f"{previous_token_score.max():.2f} of its attention on the previous token (uniform attention: {uniform:.2f})")
assert previous_token_score.max() > 2 * uniform

# %% [markdown]
# The head with the highest score puts more than twice as much attention on the previous token as
# uniform attention would. Here it is on prompt 0, the tokens as labels: most of each row's
# weight sits just left of the diagonal.

# %%
plot_attention_pattern(attention_patterns(model, task, [previous_head], prompts=[0]), roles={previous_head: "previous-token-like"});

# %% [markdown]
# Now DLA, on the positives and on the negatives side by side. For `greater-than`, whose metric
# is a probability difference, the direction is the logit difference of the same tokens (mean
# answer − mean wrong). With the scale taken from the cache (TransformerLens'
# `apply_ln_to_stack`), the decomposition is exact: the heads' attributions plus those of the
# embeddings and biases add up to each prompt's logit difference.

# %%
dla_positive = direct_logit_attribution(model, task)
dla_negative = direct_logit_attribution(model, task, side="negative")
components = dla_positive.heads.sum((1, 2)) + dla_positive.other.sum(1)
print("max |Σ components − logit difference| =", float((components - dla_positive.logit_diff).abs().max()))
assert torch.allclose(components, dla_positive.logit_diff, atol=1e-4)
top = int(dla_positive.mean().argmax())
top_head = divmod(top, n_heads)
on_positives, on_negatives = float(dla_positive.mean().flatten()[top]), float(dla_negative.mean().flatten()[top])
print(f"head {top_head[0]}.{top_head[1]} raises the answer most on the positives ({on_positives:+.2f}); "
      f"on the negatives: {on_negatives:+.2f}")
assert on_positives > on_negatives
plot_logit_attribution(dla_positive, dla_negative, highlight=[top_head], highlight_label="largest on positives", title=TASK);

# %% [markdown]
# The head that raises the right answer most on the positives raises it less on the negatives,
# where the task's information is missing. Patterns of the four heads with the largest |DLA| on
# the positives, averaged over the template's prompts:

# %%
strongest = dla_positive.mean().abs().flatten().argsort(descending=True)[:4]
plot_attention_grid(attention_patterns(model, task, [divmod(int(i), n_heads) for i in strongest], template=template));

# %% [markdown]
# Pick a head and a prompt (or a template's mean) and both views redraw. The widget is live only
# with a running kernel; under it is a plain figure of its first view, which exported pages keep.

# %%
explore_heads(model, task, [previous_head, top_head], roles={previous_head: "previous-token-like"})

# %% [markdown]
# ## Summary
#
# - Per-head work happens at `blocks.L.attn.hook_z`; `z · W_O[L, h]` is the head's write.
# - A masked mean over real positions turns a prompt into one vector per head; padding stays out.
# - Hooks return the edited activation; attach them with `with model.hooks(...)`.
# - `hook_pattern` shows where a head attends; its write through the final LayerNorm onto the
#   answer direction (DLA) shows what it does to the answer, and all components add up exactly.
#
# Next: **02 · SAE training**, where these vectors become the SAE's training data.
