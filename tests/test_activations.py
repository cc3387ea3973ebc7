"""Per-head activations against a full run_with_cache, padding, batching and bad input."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch

from saekit.activations import head_activations
from saekit.errors import ActivationError, ModelError
from saekit.tasks import task_from_strings


@pytest.fixture(scope="module")
def uneven_task(gpt2_tokenizer):
    """Three pairs of different lengths, so batches hold right padding."""
    return task_from_strings(
        gpt2_tokenizer,
        "uneven",
        ["When Mary and John went out, John gave a book to", "A cat", "The sky is blue and the"],
        ["When Mary and Paul went out, John gave a book to", "A dog", "The sea is blue and the"],
        [" Mary", " sat", " grass"],
        [" John", " ran", " sun"],
    )


def reference(model, tokens, activation, reduction):
    """Per-head vectors of one unpadded prompt from the full cache (the slow, obvious way)."""
    _, cache = model.run_with_cache(tokens[None])
    per_layer = []
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][0]  # seq head d_head
        per_position = torch.einsum("shd,hdm->shm", z, model.W_O[layer]) if activation == "result" else z
        if reduction == "mean":
            per_layer.append(per_position.mean(0))
        elif reduction == "last":
            per_layer.append(per_position[-1])
        else:
            per_layer.append(per_position[1:].mean(0))
    return torch.cat(per_layer)


@pytest.mark.parametrize(
    "activation, reduction", [("result", "mean"), ("result", "last"), ("result", "mean_no_bos"), ("z", "mean")]
)
def test_matches_the_full_cache_and_padding_never_enters(tiny_gpt2, uneven_task, activation, reduction):
    acts = head_activations(tiny_gpt2, uneven_task, activation, reduction, batch_size=3, progress=False)
    cfg = tiny_gpt2.cfg
    width = cfg.d_model if activation == "result" else cfg.d_head
    assert acts.positive.shape == (3, cfg.n_layers * cfg.n_heads, width)
    assert acts.negative.shape == acts.positive.shape
    for side, vectors in (("positive", acts.positive), ("negative", acts.negative)):
        for i, length in enumerate(uneven_task.lengths.tolist()):
            tokens = uneven_task.tokens(side)[i, :length]
            expected = reference(tiny_gpt2, tokens, activation, reduction)
            torch.testing.assert_close(vectors[i], expected.detach(), rtol=1e-4, atol=1e-5)


def test_batch_size_does_not_change_the_result(tiny_gpt2, uneven_task):
    one = head_activations(tiny_gpt2, uneven_task, batch_size=1, progress=False)
    all_at_once = head_activations(tiny_gpt2, uneven_task, batch_size=64, progress=False)
    torch.testing.assert_close(one.positive, all_at_once.positive, rtol=1e-4, atol=1e-6)
    assert one.n_heads_total == tiny_gpt2.cfg.n_layers * tiny_gpt2.cfg.n_heads


def test_hooks_are_removed_afterwards(tiny_gpt2, uneven_task):
    head_activations(tiny_gpt2, uneven_task, progress=False)
    logits = tiny_gpt2(uneven_task.positive_tokens)  # runs to the end: no hook stops it
    assert logits.shape[:2] == uneven_task.positive_tokens.shape


def test_unknown_activation_or_reduction_names_the_options(tiny_gpt2, uneven_task):
    with pytest.raises(ActivationError, match="'result'.*'z'"):
        head_activations(tiny_gpt2, uneven_task, activation="hook_result")
    with pytest.raises(ActivationError, match="mean, last, mean_no_bos"):
        head_activations(tiny_gpt2, uneven_task, reduction="max")


def test_a_model_without_the_hook_is_refused(uneven_task):
    cfg = types.SimpleNamespace(n_layers=2, d_vocab=50257, d_vocab_out=50257, n_ctx=128)
    hookless = types.SimpleNamespace(cfg=cfg, hook_dict={}, W_O=None, named_parameters=lambda: [])
    with pytest.raises(ActivationError, match=r"no hook blocks\.0\.attn\.hook_z.*load_model"):
        head_activations(hookless, uneven_task)


def test_mean_without_bos_needs_a_token_after_bos(tiny_gpt2, gpt2_tokenizer):
    one_word = task_from_strings(gpt2_tokenizer, "one-word", [" a"], [" b"], [" c"], [" d"])
    bos_only = dataclasses.replace(  # task_from_strings refuses BOS-only pairs: they are identical
        one_word, positive_tokens=one_word.positive_tokens[:, :1],
        negative_tokens=one_word.negative_tokens[:, :1], lengths=torch.ones(1, dtype=torch.long),
    )
    with pytest.raises(ActivationError, match="BOS only"):
        head_activations(tiny_gpt2, bos_only, reduction="mean_no_bos")


def test_nan_activations_are_caught(tiny_gpt2, uneven_task):
    cfg = tiny_gpt2.cfg
    weights = next(p for p in tiny_gpt2.parameters() if p.shape == (cfg.d_vocab, cfg.d_model))
    saved = weights.detach().clone()
    try:
        with torch.no_grad():
            weights.fill_(float("nan"))
        with pytest.raises(ModelError, match="weights of the model hold NaN or inf"):
            head_activations(tiny_gpt2, uneven_task, progress=False)
        with torch.no_grad():
            weights.fill_(3e38)  # finite weights whose forward pass overflows
        with pytest.raises(ActivationError, match="NaN or inf.*float32"):
            head_activations(tiny_gpt2, uneven_task, progress=False)
    finally:
        with torch.no_grad():
            weights.copy_(saved)
