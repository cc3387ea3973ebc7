"""What the heads do: their attention patterns and their direct effect on the task's answer.

Two views of a head that a score does not give. Its **attention pattern** says which earlier
tokens it reads from; its **direct logit attribution** (DLA) says how much its write, read off
at the answer position, pushes the right answer's logit above the wrong one's.

Attention averaged over prompts of different lengths needs a common frame. Patterns here are
**aligned at the end**: position −1 is each prompt's last real token, where the answer is
predicted, −2 the one before, and so on; a cell averages the prompts that reach back that far.
The end is the one position every task shares, and a task's decisive tokens (the repeated name,
the start year, the last argument) sit at fixed distances from it within a template. Across
templates they do not, and BOS lands in a different column for each length, so pass
``template=`` to average prompts of one template only.

DLA decomposes the final residual stream at the answer position into every head's write
(``z · W_O``), the embeddings and the biases (TransformerLens' ``get_full_resid_decomposition``),
divides each by the final LayerNorm scale cached on the prompt itself (``apply_ln_to_stack``),
and projects it onto the task's answer direction. Because the scale is the cached one, the
components sum *exactly* to the logit difference the direction defines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saekit.errors import HeadSetError, TaskError
from saekit.tasks.base import NO_TOKEN, ContrastiveTask, MetricKind
from saekit.tasks.ground_truth import Head, heads_to_mask, parse_head

if TYPE_CHECKING:
    from saekit._tl import HookedModel


def head_list(heads: Iterable[Any] | Tensor, n_layers: int, n_heads: int) -> tuple[Head, ...]:
    """A head set as (layer, head) pairs in the order given ("L.H" strings, pairs or a mask).

    The order is kept (a figure draws the heads as listed, e.g. a circuit by role); a boolean
    ``[n_layers, n_heads]`` mask gives its heads layer by layer.
    """
    if isinstance(heads, Tensor):
        if heads.dtype != torch.bool or tuple(heads.shape) != (n_layers, n_heads):
            raise HeadSetError(
                f"A head mask must be boolean of shape [{n_layers}, {n_heads}], not {heads.dtype} "
                f"{tuple(heads.shape)}."
            )
        listed = [tuple(pair) for pair in heads.nonzero().tolist()]
    else:
        if isinstance(heads, str):
            raise HeadSetError(f"Give a list of heads, e.g. [{heads!r}], not the string {heads!r}.")
        listed = [parse_head(item) for item in heads]
        heads_to_mask(listed, n_layers, n_heads)  # range check, names the head that does not fit
    if not listed:
        raise HeadSetError("The head set is empty; give at least one head, e.g. ['1.4'] or [(1, 4)].")
    return tuple(listed)


def _device(model: HookedModel) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------------------------
# Attention patterns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionPatterns:
    """Attention patterns of some heads in one frame of positions aligned at the prompts' end.

    ``pattern[i, q, k]`` is how much head ``heads[i]`` at query position ``q`` attends to key
    position ``k``; each row sums to 1 over keys at or before the query (causal). ``labels``
    names each position: the token where every averaged prompt has the same one, otherwise the
    longest prompt's token in brackets (e.g. ``[Mary]``: a name that varies).
    """

    pattern: Float[Tensor, "n_selected pos pos"]
    heads: tuple[Head, ...]
    labels: tuple[str, ...]
    n_prompts: int
    description: str

    def of(self, head: Any) -> Float[Tensor, "pos pos"]:
        """The pattern of one head of the set, given as (layer, head) or "L.H"."""
        wanted = parse_head(head)
        if wanted not in self.heads:
            raise HeadSetError(f"Head {wanted} is not among the patterns' heads {list(self.heads)}.")
        return self.pattern[self.heads.index(wanted)]


def _prompt_rows(task: ContrastiveTask, prompts: Iterable[int] | None, template: int | None) -> Int[Tensor, " n"]:
    """The prompt indices to average: ``prompts`` (all if None), of ``template`` only if given."""
    rows = torch.arange(task.n_pairs) if prompts is None else torch.as_tensor(list(prompts), dtype=torch.long)
    if rows.numel() == 0 or bool(((rows < 0) | (rows >= task.n_pairs)).any()):
        raise TaskError(
            f"Prompt indices {rows.tolist()} are empty or out of range: task {task.name!r} has "
            f"prompts 0..{task.n_pairs - 1}."
        )
    if template is not None:
        rows = rows[task.template_ids[rows] == template]
        if rows.numel() == 0:
            raise TaskError(
                f"No chosen prompt of task {task.name!r} uses template {template}; its templates are "
                f"{sorted(set(task.template_ids.tolist()))}."
            )
    return rows


def _aligned_index(lengths: Int[Tensor, " n"], width: int) -> tuple[Int[Tensor, "n width"], Tensor]:
    """For each prompt and end-aligned position 0..width-1, its own position and whether it has one."""
    own = torch.arange(width)[None, :] - (width - lengths)[:, None]
    return own.clamp(min=0), own >= 0


def _end_aligned(
    patterns: Float[Tensor, "n k seq seq"], lengths: Int[Tensor, " n"], width: int
) -> Float[Tensor, "n k width width"]:
    """Patterns moved into the end-aligned frame; zero where a prompt has no such query or key."""
    own, present = _aligned_index(lengths, width)
    n, k, seq, _ = patterns.shape
    moved = patterns.gather(2, own[:, None, :, None].expand(n, k, width, seq))
    moved = moved.gather(3, own[:, None, None, :].expand(n, k, width, width))
    return moved * (present[:, :, None] & present[:, None, :])[:, None]


def attention_patterns(
    model: HookedModel,
    task: ContrastiveTask,
    heads: Iterable[Any] | Tensor,
    side: str = "positive",
    prompts: Iterable[int] | None = None,
    template: int | None = None,
    batch_size: int = 64,
) -> AttentionPatterns:
    """The mean attention pattern of each of ``heads`` over a task's prompts, aligned at the end.

    ``prompts`` picks prompts by index (``[3]`` is one prompt, its own tokens as labels);
    ``template`` keeps only prompts of that template (``task.template_ids``), where positions
    line up token for token. One forward pass per ``batch_size`` prompts reads
    ``blocks.L.attn.hook_pattern`` of the layers involved; the heads are picked by indexing.
    """
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    selected = head_list(heads, n_layers, n_heads)
    tokens_all = task.tokens(side)
    rows = _prompt_rows(task, prompts, template)
    if batch_size < 1:
        raise TaskError(f"batch_size must be at least 1, not {batch_size}.")
    layers = sorted({layer for layer, _ in selected})
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
    wanted = set(names)
    layer_slot = torch.tensor([layers.index(layer) for layer, _ in selected])
    head_index = torch.tensor([head for _, head in selected])
    lengths = task.lengths[rows]
    width = int(lengths.max())
    total = torch.zeros(len(selected), width, width)
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            seq = int(task.lengths[batch].max())
            tokens = tokens_all[batch, :seq].to(_device(model))
            _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in wanted)
            by_layer = torch.stack([cache[name] for name in names], 1).float().cpu()  # [b, layers, H, q, k]
            total += _end_aligned(by_layer[:, layer_slot, head_index], task.lengths[batch], width).sum(0)
    # each query row is the mean over the prompts that reach back that far
    _, present = _aligned_index(lengths, width)
    pattern = total / present.sum(0).clamp(min=1)[None, :, None]
    return AttentionPatterns(
        pattern=pattern,
        heads=selected,
        labels=_position_labels(model, tokens_all[rows], lengths, width),
        n_prompts=len(rows),
        description=(
            f"{task.name} {side} prompt {int(rows[0])}" if len(rows) == 1 else
            f"mean of {len(rows)} {task.name} {side} prompts"
            + (f", template {template}" if template is not None else "") + ", aligned at the end"
        ),
    )


def _position_labels(
    model: HookedModel, tokens: Int[Tensor, "n seq"], lengths: Int[Tensor, " n"], width: int
) -> tuple[str, ...]:
    """The token at each end-aligned position, bracketed where the prompts differ there."""
    own, present = _aligned_index(lengths, width)
    aligned = tokens.gather(1, own.clamp(max=tokens.shape[1] - 1))
    longest = aligned[int(lengths.argmax())]
    shared = ((aligned == longest[None]) | ~present).all(0)
    words = model.tokenizer.batch_decode(longest[:, None].tolist())
    return tuple(word if same else f"[{word}]" for word, same in zip(words, shared.tolist()))


# --------------------------------------------------------------------------------------------
# Direct logit attribution
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogitAttribution:
    """Each component's direct effect on one side's logit difference at the answer position.

    ``heads[i, l, h]`` is head (l, h)'s write on prompt i, scaled by the cached final LayerNorm
    and projected onto the answer direction; ``other`` holds the remaining components
    (``other_labels``: embed, pos_embed, MLP layers, the summed biases, and the unembedding and
    final-LayerNorm biases). Per prompt, ``heads`` plus ``other`` sum to ``logit_diff``.
    """

    heads: Float[Tensor, "n_prompts n_layers n_heads"]
    other: Float[Tensor, "n_prompts n_other"]
    other_labels: tuple[str, ...]
    logit_diff: Float[Tensor, " n_prompts"]
    side: str
    direction: str

    def mean(self) -> Float[Tensor, "n_layers n_heads"]:
        """Each head's attribution averaged over the prompts."""
        return self.heads.mean(0)


def _answer_weights(
    task: ContrastiveTask, rows: Int[Tensor, " n"], answer_logits: Float[Tensor, "n vocab"]
) -> tuple[Float[Tensor, "n n_answers"], Float[Tensor, "n n_wrong"]]:
    """Weights of each answer and wrong token in the logit difference the metric reads.

    Answers are averaged. Wrong tokens are averaged too, except for ``LOGIT_DIFF_MAX``, where the
    metric takes the highest wrong logit: all weight on that token. ``PROB_DIFF`` is not linear
    in the logits; its direction is the same mean-answer minus mean-wrong logit difference.
    """
    answers, wrongs = task.answer_tokens[rows], task.wrong_tokens[rows]
    answer_mask, wrong_mask = (answers != NO_TOKEN).float(), (wrongs != NO_TOKEN).float()
    answer_weights = answer_mask / answer_mask.sum(1, keepdim=True)
    if task.metric is MetricKind.LOGIT_DIFF_MAX:
        wrong_logits = answer_logits.gather(1, wrongs.clamp(min=0)).masked_fill(wrong_mask == 0, float("-inf"))
        wrong_weights = torch.nn.functional.one_hot(wrong_logits.argmax(1), wrongs.shape[1]).float()
    else:
        wrong_weights = wrong_mask / wrong_mask.sum(1, keepdim=True)
    return answer_weights, wrong_weights


def _final_norm_affine(model: HookedModel) -> tuple[Float[Tensor, " d_model"], Float[Tensor, " d_model"]]:
    """The final norm's weight and bias (ones and zeros where it has none, e.g. folded LNPre)."""
    d_model = int(model.cfg.d_model)
    weight = getattr(model.ln_final, "w", None)
    bias = getattr(model.ln_final, "b", None)
    return (
        torch.ones(d_model) if weight is None else weight.detach().float().cpu(),
        torch.zeros(d_model) if bias is None else bias.detach().float().cpu(),
    )


def _columns(weight: Tensor, tokens: Int[Tensor, "n k"]) -> Tensor:
    """``weight[..., tokens]`` (W_U's columns or b_U's entries) in float32 on the CPU."""
    return weight.detach()[..., tokens.to(weight.device)].float().cpu()


def direct_logit_attribution(
    model: HookedModel,
    task: ContrastiveTask,
    side: str = "positive",
    batch_size: int = 64,
) -> LogitAttribution:
    """Every head's direct logit attribution on ``side``'s prompts, at each answer position.

    The direction is the task's: mean answer unembedding minus mean wrong unembedding (for
    ``LOGIT_DIFF_MAX``, minus the highest-scoring wrong token's on that prompt), with the final
    norm's weight folded in. Negatives are measured against their positives' answers, as the
    metric does. One forward pass per ``batch_size`` prompts; only the answer position is kept.
    """
    from transformer_lens import ActivationCache

    if batch_size < 1:
        raise TaskError(f"batch_size must be at least 1, not {batch_size}.")
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    tokens_all = task.tokens(side)
    norm_weight, norm_bias = _final_norm_affine(model)
    wanted = {"hook_embed", "hook_pos_embed", "ln_final.hook_scale"} | {
        f"blocks.{layer}.{name}" for layer in range(n_layers) for name in ("attn.hook_z", "hook_mlp_out")
    }
    parts: dict[str, list[Tensor]] = {"heads": [], "other": [], "logit_diff": []}
    labels: list[str] = []
    with torch.no_grad():
        for start in range(0, task.n_pairs, batch_size):
            rows = torch.arange(start, min(start + batch_size, task.n_pairs))
            seq = int(task.lengths[rows].max())
            logits, cache = model.run_with_cache(
                tokens_all[rows, :seq].to(_device(model)), names_filter=lambda name: name in wanted
            )
            last = task.lengths[rows] - 1
            batch = torch.arange(len(rows))
            # keep only the answer position: a cache with one position per prompt
            at_answer = {name: value[batch.to(value.device), last.to(value.device)][:, None]
                         for name, value in cache.items()}
            stack, names = ActivationCache(at_answer, model).get_full_resid_decomposition(
                layer=-1, expand_neurons=False, apply_ln=True, pos_slice=-1, return_labels=True
            )
            answer_logits = logits[batch.to(logits.device), last.to(logits.device)].float().cpu()
            answer_weights, wrong_weights = _answer_weights(task, rows, answer_logits)
            answers, wrongs = task.answer_tokens[rows].clamp(min=0), task.wrong_tokens[rows].clamp(min=0)
            # the answer direction in unembedding space, one per prompt (only these columns of W_U)
            direction = torch.einsum("na,dna->nd", answer_weights, _columns(model.W_U, answers)) - torch.einsum(
                "nw,dnw->nd", wrong_weights, _columns(model.W_U, wrongs)
            )
            constant = (
                direction @ norm_bias
                + (answer_weights * _columns(model.b_U, answers)).sum(1)
                - (wrong_weights * _columns(model.b_U, wrongs)).sum(1)
            )
            projected = torch.einsum("cnd,nd->nc", stack.float().cpu(), direction * norm_weight)
            parts["heads"].append(projected[:, : n_layers * n_heads].reshape(len(rows), n_layers, n_heads))
            parts["other"].append(torch.cat([projected[:, n_layers * n_heads :], constant[:, None]], 1))
            parts["logit_diff"].append(
                (answer_weights * answer_logits.gather(1, answers)).sum(1)
                - (wrong_weights * answer_logits.gather(1, wrongs)).sum(1)
            )
            labels = [*names[n_layers * n_heads :], "unembed and final-norm bias"]
    return LogitAttribution(
        heads=torch.cat(parts["heads"]),
        other=torch.cat(parts["other"]),
        other_labels=tuple(labels),
        logit_diff=torch.cat(parts["logit_diff"]),
        side=side,
        direction=(
            "mean answer − highest wrong logit" if task.metric is MetricKind.LOGIT_DIFF_MAX
            else "mean answer − mean wrong logit"
        ),
    )
