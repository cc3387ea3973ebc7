"""Exercise checks: each takes the learner's function, tries it on small inputs, and explains.

A check prints one line when the function is right and raises
[`ExerciseFailed`][saekit.course.checks.ExerciseFailed] with a hint when it is not. The hints
name the usual mistakes (padding inside a mean, variance about zero, a missing "no code"
sentinel, ...), so read them before looking at the solution.
Inputs are random but seeded by a local generator: a check gives the same verdict every run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from saekit.course import solutions


class ExerciseFailed(AssertionError):
    """The learner's function gave a wrong answer; the message says how and hints at why."""


def _rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _call(name: str, fn: Callable, *args: Any) -> Any:
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseFailed(
            f"{name}: not implemented yet. Replace the stub with your code, or skip the exercise with "
            f"`{getattr(fn, '__name__', name)} = use_solution({name!r})`."
        ) from None
    except Exception as err:  # the learner's bug, reported with its type and message
        raise ExerciseFailed(f"{name}: your function raised {type(err).__name__}: {err}") from err


def _tensor(name: str, value: Any, shape: tuple[int, ...]) -> Tensor:
    if not isinstance(value, Tensor):
        raise ExerciseFailed(f"{name}: return a torch.Tensor, not {type(value).__name__}.")
    if tuple(value.shape) != shape:
        raise ExerciseFailed(f"{name}: expected shape {shape}, got {tuple(value.shape)}.")
    return value


def _passed(name: str) -> None:
    print(f"✔ {name}: all checks passed.")


def top_k_heads(fn: Callable[[Tensor, int], set[tuple[int, int]]]) -> None:
    """``fn(scores [n_layers, n_heads], k)`` → the set of the ``k`` best (layer, head) pairs.

    Ties go to the lower flat index (``layer * n_heads + head``): the second and third cases are
    counts with ties across the cut, where ``torch.topk`` (no promised order among ties) fails.
    """
    name = "top_k_heads"
    cases = [
        (torch.rand(3, 4, generator=_rng()), 5),
        (torch.tensor([[2.0, 5.0, 2.0, 0.0], [5.0, 1.0, 2.0, 2.0], [0.0, 5.0, 1.0, 3.0]]), 5),
        (torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]]), 4),
    ]
    for scores, k in cases:
        got = _call(name, fn, scores.clone(), k)
        if not isinstance(got, (set, frozenset)):
            raise ExerciseFailed(f"{name}: return a set of (layer, head) tuples, not {type(got).__name__}.")
        if not all(isinstance(item, tuple) and len(item) == 2 for item in got):
            raise ExerciseFailed(
                f"{name}: every element must be a (layer, head) tuple; got e.g. {next(iter(got), None)!r}. "
                "Hint: a flat index i is layer i // n_heads, head i % n_heads."
            )
        n_heads = scores.shape[1]
        flat = torch.sort(scores.flatten(), descending=True, stable=True).indices
        want = solutions.top_k_heads(scores, k)
        worst = {divmod(int(i), n_heads) for i in flat[-k:]}
        if got == worst:
            raise ExerciseFailed(f"{name}: you picked the lowest scores; sort in descending order.")
        if len(got) != k:
            raise ExerciseFailed(f"{name}: asked for k={k} heads, got {len(got)}.")
        in_range = all(0 <= layer < scores.shape[0] and 0 <= head < n_heads for layer, head in got)
        if got != want and in_range and sorted(float(scores[h]) for h in got) == sorted(float(scores[h]) for h in want):
            raise ExerciseFailed(
                f"{name}: right scores, wrong heads among the ties (scores {scores.tolist()}, k={k}). Equal "
                "scores go to the lower flat index; torch.topk promises no order among ties, a stable "
                "descending sort does: torch.sort(flat, descending=True, stable=True)."
            )
        if got != want:
            raise ExerciseFailed(
                f"{name}: wrong heads. Hint: flatten the [n_layers, n_heads] grid, take the top k "
                "flat indices, and convert each back with divmod(index, n_heads)."
            )
    _passed(name)


def head_writes(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(z [batch, pos, n_heads, d_head], W_O [n_heads, d_head, d_model])`` → per-head writes."""
    name = "head_writes"
    rng = _rng()
    z, w_o = torch.randn(2, 5, 3, 4, generator=rng), torch.randn(3, 4, 6, generator=rng)
    got = _call(name, fn, z, w_o)
    if isinstance(got, Tensor) and tuple(got.shape) == (2, 5, 6):
        raise ExerciseFailed(
            f"{name}: you summed over heads (that is the attention output hook_attn_out). Keep the "
            "head axis: 'batch pos head d_head, head d_head d_model -> batch pos head d_model'."
        )
    got = _tensor(name, got, (2, 5, 3, 6))
    want = solutions.head_writes(z, w_o)
    if not torch.allclose(got, want, atol=1e-5):
        raise ExerciseFailed(
            f"{name}: wrong values. Each head h multiplies its own z[..., h, :] by its own W_O[h]; "
            "check that you pair the head axes and contract over d_head."
        )
    _passed(name)


def masked_position_mean(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(values [n, seq, n_heads, d], lengths [n])`` → mean over the real positions [n, n_heads, d]."""
    name = "masked_position_mean"
    rng = _rng()
    values = torch.randn(3, 6, 2, 4, generator=rng)
    lengths = torch.tensor([6, 3, 1])
    got = _tensor(name, _call(name, fn, values, lengths), (3, 2, 4))
    real = (torch.arange(6) < lengths[:, None])[:, :, None, None]
    want = solutions.masked_position_mean(values, lengths)
    if torch.allclose(got, values.mean(1), atol=1e-5):
        raise ExerciseFailed(
            f"{name}: you averaged over padding too. Build a mask `arange(seq) < lengths[:, None]` and "
            "average only where it is True."
        )
    if torch.allclose(got, (values * real).sum(1) / values.shape[1], atol=1e-5):
        raise ExerciseFailed(f"{name}: you zeroed the padding but still divided by seq; divide by lengths.")
    if not torch.allclose(got, want, atol=1e-5):
        raise ExerciseFailed(
            f"{name}: wrong values. Positions 0 .. lengths[i]-1 of prompt i are real (BOS included); "
            "the rest is padding."
        )
    _passed(name)


def zero_head_hook(fn: Callable[[int], Callable]) -> None:
    """``fn(head)`` → a hook ``hook(z, hook)`` that returns z with that head's slice set to 0."""
    name = "zero_head_hook"
    z = torch.randn(2, 5, 4, 3, generator=_rng())
    hook_fn = _call(name, fn, 2)
    if not callable(hook_fn):
        raise ExerciseFailed(f"{name}: return a function (the hook), not {type(hook_fn).__name__}.")
    got = _call(name, hook_fn, z.clone(), None)
    if got is None:
        raise ExerciseFailed(f"{name}: the hook must return the (edited) activation; it returned None.")
    got = _tensor(name, got, tuple(z.shape))
    if got[:, :, 2].abs().max() > 0:
        if got[:, 2].abs().max() == 0:
            raise ExerciseFailed(f"{name}: you zeroed position 2. hook_z is [batch, pos, head, d_head]: index [:, :, head].")
        raise ExerciseFailed(f"{name}: head 2 is not zero. Set z[:, :, head] = 0 (or use torch.where).")
    others = [h for h in range(4) if h != 2]
    if not torch.equal(got[:, :, others], z[:, :, others]):
        raise ExerciseFailed(f"{name}: the other heads changed; only head 2 should be zeroed.")
    _passed(name)


def sae_loss(fn: Callable[[Tensor, Tensor, Tensor, float], Tensor]) -> None:
    """``fn(x [n, d], x_hat [n, d], latents [n, d_sae], l1_coefficient)`` → the paper's training loss."""
    name = "sae_loss"
    rng = _rng()
    x, x_hat = torch.randn(6, 4, generator=rng), torch.randn(6, 4, generator=rng)
    latents = torch.randn(6, 10, generator=rng)  # signed (as AbsTopK's are), so the L1 norm needs |f|
    got = _call(name, fn, x, x_hat, latents, 0.1)
    if not isinstance(got, Tensor) or got.numel() != 1:
        raise ExerciseFailed(f"{name}: return a single-number tensor (so loss.backward() works).")
    got = float(got)
    mse = (x_hat - x).pow(2).mean()
    l1 = latents.abs().sum(-1).mean()
    want = float(solutions.sae_loss(x, x_hat, latents, 0.1))
    if abs(got - float(mse + 0.1 * latents.abs().mean())) < 1e-5:
        raise ExerciseFailed(
            f"{name}: your L1 term averages over latents too. The penalty is the L1 norm of each "
            "sample's latent vector (sum over d_sae), averaged over samples."
        )
    if abs(got - float(mse)) < 1e-5:
        raise ExerciseFailed(f"{name}: the sparsity penalty is missing; add l1_coefficient · mean ‖f‖₁.")
    if abs(got - float(mse + 0.1 * latents.sum(-1).mean())) < 1e-5:
        raise ExerciseFailed(f"{name}: the L1 norm sums |f|, not f: a negative latent costs as much as a positive one.")
    if abs(got - float((x_hat - x).pow(2).sum(-1).mean() + 0.1 * l1)) < 1e-5:
        raise ExerciseFailed(f"{name}: you summed the squared error over dimensions; the MSE averages over them too.")
    if abs(got - want) > 1e-5:
        raise ExerciseFailed(
            f"{name}: expected {want:.4f}, got {got:.4f}. Loss = mean((x̂ − x)²) over samples and "
            "dimensions + l1_coefficient · mean over samples of Σ|f|."
        )
    _passed(name)


def explained_variance(fn: Callable[[Tensor, Tensor], Any]) -> None:
    """``fn(x [n, d], x_hat [n, d])`` → fraction of the variance of x (about its mean) explained."""
    name = "explained_variance"
    rng = _rng()
    # Features with their own offsets and scales: a global mean or a per-feature average differs.
    x = torch.randn(50, 8, generator=rng) * torch.linspace(0.5, 3.0, 8) + torch.arange(8.0)
    x_hat = x + 0.5 * torch.randn(50, 8, generator=rng)
    got = float(_call(name, fn, x, x_hat))
    residual = (x - x_hat).pow(2).sum()
    want = solutions.explained_variance(x, x_hat)
    about_zero = float(1 - residual / x.pow(2).sum())
    about_global_mean = float(1 - residual / (x - x.mean()).pow(2).sum())
    per_feature = float((1 - (x - x_hat).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean())
    if abs(got - about_zero) < 1e-4:
        raise ExerciseFailed(
            f"{name}: you measured variance about zero. Subtract the per-feature mean x.mean(0) first, "
            "or a constant offset counts as 'explained' (here it inflates the score)."
        )
    if abs(got - about_global_mean) < 1e-4:
        raise ExerciseFailed(
            f"{name}: you subtracted one mean over everything (x.mean()); each feature has its own mean: x.mean(0)."
        )
    if abs(got - per_feature) < 1e-4:
        raise ExerciseFailed(
            f"{name}: you averaged one score per feature; pool the sums over all samples and dimensions "
            "first, so that high-variance features weigh more."
        )
    if abs(got - want) > 1e-4:
        raise ExerciseFailed(f"{name}: expected {want:.4f}, got {got:.4f}. Formula: 1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖².")
    _passed(name)


def codes_from_latents(fn: Callable[[Tensor], Tensor]) -> None:
    """``fn(latents [..., d_sae])`` → argmax codes, with ``NO_CODE`` (-1) for all-zero rows."""
    from saekit.codes import NO_CODE

    name = "codes_from_latents"
    latents = torch.rand(4, 3, 7, generator=_rng()).relu() * (torch.rand(4, 3, 1, generator=_rng(1)) > 0.3)
    latents[0, 0] = 0.0
    latents[:, :, :2] = 0.0  # zeros inside rows that do have a code
    got = _tensor(name, _call(name, fn, latents.clone()), (4, 3))
    want = solutions.codes_from_latents(latents)
    if got.is_floating_point():
        raise ExerciseFailed(f"{name}: codes are integer indices; return a long tensor (argmax gives one).")
    silent = want == NO_CODE
    if torch.equal(got[~silent], want[~silent]) and not torch.equal(got, want):
        raise ExerciseFailed(
            f"{name}: rows where every latent is 0 must get NO_CODE = {NO_CODE}. argmax of all zeros "
            "returns 0, which would pretend the head used latent 0."
        )
    if torch.equal(got, want.masked_fill((latents == 0).any(-1), NO_CODE)):
        raise ExerciseFailed(f"{name}: a row with SOME zero latents still has a code; NO_CODE only when ALL are zero.")
    if not torch.equal(got, want):
        raise ExerciseFailed(f"{name}: wrong codes. The code is the index of the largest latent (argmax over the last axis).")
    _passed(name)


def node_scores(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(positive_codes [n_pos, n_heads], negative_codes [n_neg, n_heads])`` → |P_h \\ N_h| per head."""
    name = "node_scores"
    rng = _rng()
    positive = torch.randint(-1, 6, (20, 5), generator=rng)  # -1 is NO_CODE: a value like any other
    negative = torch.randint(-1, 6, (15, 5), generator=rng)
    negative[:, 0] = 9  # head 0: no positive code is ever seen on a negative
    got = _tensor(name, _call(name, fn, positive, negative), (5,))
    sets = [(set(positive[:, h].tolist()), set(negative[:, h].tolist())) for h in range(5)]
    want = solutions.node_scores(positive, negative)
    if torch.equal(got.long(), torch.tensor([len(n - p) for p, n in sets])):
        raise ExerciseFailed(f"{name}: you counted codes of the negatives missing from the positives; it is P minus N.")
    if torch.equal(got.long(), torch.tensor([len(p & n) for p, n in sets])):
        raise ExerciseFailed(f"{name}: you counted shared codes (P ∩ N); the score counts codes only in P.")
    if not torch.equal(got.long(), want):
        raise ExerciseFailed(
            f"{name}: expected {want.tolist()}, got {got.tolist()}. Count distinct codes: for each head, "
            "set(positive codes) - set(negative codes)."
        )
    _passed(name)


def precision_recall_at_k(fn: Callable[[Tensor, Tensor, int], tuple[float, float]]) -> None:
    """``fn(scores [n], is_true [n] bool, k)`` → (precision, recall) of the top-k heads."""
    name = "precision_recall_at_k"
    # The top 3 (heads 0, 2, 3) hold 2 of the 4 circuit heads, the bottom 3 none, the first 3 one.
    scores = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.2, 0.6, 0.3, 0.4])
    is_true = torch.tensor([True, False, False, True, False, True, False, True])
    got = _call(name, fn, scores, is_true, 3)
    if not (isinstance(got, tuple) and len(got) == 2):
        raise ExerciseFailed(f"{name}: return a (precision, recall) tuple.")
    precision, recall = (float(v) for v in got)
    if abs(precision - 0.5) < 1e-6 and abs(recall - 2 / 3) < 1e-6:
        raise ExerciseFailed(f"{name}: precision and recall are swapped.")
    if precision == 0 and recall == 0:
        raise ExerciseFailed(f"{name}: none of your k heads is a circuit head: you took the lowest scores; sort in descending order.")
    if abs(precision - 1 / 3) < 1e-6 and abs(recall - 0.25) < 1e-6:
        raise ExerciseFailed(f"{name}: you took the first k heads by index; take the k highest scores.")
    if abs(precision - 2 / 3) > 1e-6 or abs(recall - 0.5) > 1e-6:
        raise ExerciseFailed(
            f"{name}: expected (0.667, 0.500), got ({precision:.3f}, {recall:.3f}). Precision = true heads "
            "among the k picked / k; recall = true heads picked / all true heads."
        )
    _passed(name)


def normalised_faithfulness(fn: Callable[[float, float, float], float]) -> None:
    """``fn(metric_circuit, metric_empty, metric_model)`` → (F(C) − F(∅)) / (F(M) − F(∅))."""
    name = "normalised_faithfulness"
    cases = [((3.0, -1.0, 4.0), 0.8), ((-1.0, -1.0, 4.0), 0.0), ((5.0, 1.0, 3.0), 2.0), ((-3.0, -1.0, 4.0), -0.4)]
    for args, want in cases:
        got = float(_call(name, fn, *args))
        if abs(got - want) > 1e-6:
            raise ExerciseFailed(
                f"{name}{args}: expected {want}, got {got:.4f}. Subtract the empty circuit's metric from both "
                "the circuit's and the full model's: 0 means 'no better than nothing', 1 'as good as the model'; "
                "do not clip: below 0 (worse than nothing) and above 1 are results too."
            )
    _passed(name)


def mean_ablate(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """``fn(z [batch, pos, n_heads, d_head], mean_z [n_heads, d_head], keep [n_heads] bool)`` → ablated z."""
    name = "mean_ablate"
    rng = _rng()
    z, mean_z = torch.randn(2, 3, 4, 5, generator=rng), torch.randn(4, 5, generator=rng)
    keep = torch.tensor([True, False, True, False])
    got = _tensor(name, _call(name, fn, z.clone(), mean_z, keep), tuple(z.shape))
    want = solutions.mean_ablate(z, mean_z, keep)
    if torch.allclose(got, torch.where(~keep[:, None], z, mean_z)):
        raise ExerciseFailed(f"{name}: you replaced the circuit's heads; replace the heads OUTSIDE it (keep is False).")
    if not torch.allclose(got, want):
        raise ExerciseFailed(
            f"{name}: wrong values. Heads with keep=False take mean_z[head] at every batch row and position; "
            "heads with keep=True are left as they are. torch.where broadcasts keep[:, None] for you."
        )
    _passed(name)


def third_name_negative(fn: Callable[[str, str, str], str]) -> None:
    """``fn(positive, subject, replacement)`` → the positive with the subject's FIRST mention replaced."""
    name = "third_name_negative"
    cases = [
        ("When Mary and John went to the park , John gave a ball to", "John", "Alice",
         "When Mary and Alice went to the park , John gave a ball to"),
        ("Then , Sam and Samuel had fun at the beach . Sam gave a key to", "Sam", "Rose",
         "Then , Rose and Samuel had fun at the beach . Sam gave a key to"),
        ("When Samuel and Sam went to the store , Sam gave a drink to", "Sam", "Rose",
         "When Samuel and Rose went to the store , Sam gave a drink to"),
    ]
    for positive, subject, replacement, want in cases:
        got = _call(name, fn, positive, subject, replacement)
        if not isinstance(got, str):
            raise ExerciseFailed(f"{name}: return the negative prompt as a string, not {type(got).__name__}.")
        if got == positive.replace(subject, replacement):
            raise ExerciseFailed(
                f"{name}: you replaced every occurrence. Only the first mention changes; the second (the "
                "subject who gives) must stay, or the negative no longer has the same structure."
            )
        if len(got.split()) != len(positive.split()):
            raise ExerciseFailed(f"{name}: the negative has a different number of words; a pair must line up position by position.")
        if got != want:
            raise ExerciseFailed(
                f"{name}({subject!r} → {replacement!r}): expected {want!r}, got {got!r}. Work on whole words "
                "(split on spaces) so that 'Sam' does not match inside 'Samuel'."
            )
    _passed(name)


def topk_activation(fn: Callable[[Tensor, int], Tensor]) -> None:
    """``fn(pre [n, d_sae], k)`` → ReLU of each row's k largest pre-activations, zeros elsewhere."""
    name = "topk_activation"
    pre = torch.randn(6, 10, generator=_rng())
    pre[0] = -pre[0].abs()  # a row whose k largest are all negative: ReLU must close them
    got = _tensor(name, _call(name, fn, pre.clone(), 3), tuple(pre.shape))
    values, indices = pre.topk(3, dim=-1)
    without_relu = torch.zeros_like(pre).scatter(-1, indices, values)
    want = solutions.topk_activation(pre, 3)
    smallest = pre.topk(3, dim=-1, largest=False)
    kept_smallest = torch.zeros_like(pre).scatter(-1, smallest.indices, smallest.values)
    by_magnitude = pre.abs().topk(3, dim=-1).indices
    if torch.allclose(got, kept_smallest) or torch.allclose(got, kept_smallest.relu()):
        raise ExerciseFailed(f"{name}: you kept the k smallest pre-activations; keep the k largest (topk's default).")
    if torch.allclose(got, torch.zeros_like(pre).scatter(-1, by_magnitude, pre.gather(-1, by_magnitude))):
        raise ExerciseFailed(
            f"{name}: you kept the k largest |pre| with their signs: that is AbsTopK. TopK keeps the k "
            "largest values, then applies ReLU."
        )
    if torch.allclose(got, without_relu):
        raise ExerciseFailed(
            f"{name}: negative pre-activations survived. Apply ReLU to the k kept values: a row whose "
            "k largest are all negative has no active latent."
        )
    if torch.allclose(got, pre.relu()) or torch.allclose(got, pre):
        raise ExerciseFailed(f"{name}: every latent is still there; zero all but the k largest of each row.")
    if not torch.allclose(got, want):
        raise ExerciseFailed(
            f"{name}: wrong values. Per row (dim=-1): values, indices = pre.topk(k); put values.relu() "
            "at those indices of a zero tensor (scatter)."
        )
    _passed(name)


def signed_codes(fn: Callable[[Tensor], Tensor]) -> None:
    """``fn(latents [..., d_sae], may be negative)`` → argmax |f|, + d_sae if negative, NO_CODE if all 0."""
    from saekit.codes import NO_CODE
    from saekit.codes import codes_from_latents as reference

    name = "signed_codes"
    rng = _rng()
    latents = torch.randn(4, 3, 7, generator=rng) * (torch.rand(4, 3, 7, generator=rng) > 0.5)
    latents[0, 0] = 0.0
    latents[1, 1] = torch.tensor([0.5, 0.0, -2.0, 0.0, 1.0, 0.0, 0.0])  # the strongest is negative
    latents[1, 2] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.3])  # only a negative latent fires
    got = _tensor(name, _call(name, fn, latents.clone()), (4, 3))
    if got.is_floating_point():
        raise ExerciseFailed(f"{name}: codes are integer indices; return a long tensor (argmax gives one).")
    want = solutions.signed_codes(latents)
    silent = want == NO_CODE
    unsigned_index = latents.abs().argmax(-1)
    if torch.equal(got[~silent], reference(latents)[~silent]):
        raise ExerciseFailed(
            f"{name}: you took argmax of f itself, which ignores strong negative latents. The strongest "
            "latent is the one of largest magnitude: argmax of |f|."
        )
    if torch.equal(got[~silent], unsigned_index[~silent]):
        raise ExerciseFailed(
            f"{name}: the sign is lost: a negative strongest latent i must get code i + d_sae, or +v and "
            "−v share a code."
        )
    if torch.equal(got[~silent], want[~silent]) and not torch.equal(got, want):
        raise ExerciseFailed(f"{name}: rows where every latent is 0 must get NO_CODE = {NO_CODE}, not latent 0.")
    if not torch.equal(got, want):
        raise ExerciseFailed(
            f"{name}: wrong codes. i = argmax |f|; code i if f[i] > 0, i + d_sae if f[i] < 0, "
            f"{NO_CODE} if the row is all zeros."
        )
    _passed(name)


def head_d_prime(fn: Callable[[Tensor, Tensor], Any]) -> None:
    """``fn(positive [n, d], negative [n, d])`` → one head's d′ = ‖μ₊ − μ₋‖ / sqrt((tr Σ₊ + tr Σ₋) / 2)."""
    from saekit.activations import HeadActivations
    from saekit.diagnose import d_prime

    name = "head_d_prime"
    rng = _rng()
    # few vectors (n − 1 vs n shows), unequal spreads per class and per dimension (a mean of
    # variances or of standard deviations shows), a shift between the classes
    positive = torch.randn(4, 3, generator=rng) * torch.tensor([1.0, 3.0, 0.5]) + torch.tensor([1.0, -2.0, 0.5])
    negative = torch.randn(4, 3, generator=rng) * 2.0
    got = _call(name, fn, positive.clone(), negative.clone())
    try:
        got = float(got)
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseFailed(f"{name}: return one number (a float or a one-element tensor), not {type(got).__name__}.") from None
    pair = HeadActivations(positive=positive[:, None], negative=negative[:, None], activation="result",
                           reduction="mean", n_layers=1, n_heads=1)
    want = float(d_prime(pair)[0])
    gap = float((positive.mean(0) - negative.mean(0)).norm())
    variance = {c: positive.var(0, correction=c) + negative.var(0, correction=c) for c in (0, 1)}
    wrong = {
        "you returned ‖μ₊ − μ₋‖ itself: divide by the pooled within-class spread, so that rescaling a "
        "head does not change its d′.": gap,
        "you divided by n − 1: use the population variance (var(0, correction=0)), the mean squared "
        "distance from the class mean.": gap / float((variance[1].sum() / 2).sqrt()),
        "you averaged the variances over dimensions: tr Σ is their sum (the total variance of the "
        "class).": gap / float((variance[0].mean() / 2).sqrt()),
        "you pooled standard deviations: average the two total variances, then take the square root.":
        gap / float((positive.var(0, correction=0).sum().sqrt() + negative.var(0, correction=0).sum().sqrt()) / 2),
        "you forgot the 1/2: the pooled spread is sqrt of the *mean* of the two total variances.":
        gap / float(variance[0].sum().sqrt()),
    }
    if math.isclose(got, want, rel_tol=1e-4):
        _passed(name)
        return
    for hint, value in wrong.items():
        if math.isclose(got, value, rel_tol=1e-4):
            raise ExerciseFailed(f"{name}: {hint}")
    raise ExerciseFailed(
        f"{name}: expected {want:.4f}, got {got:.4f}. μ is each class's mean vector (mean over dim 0); tr Σ "
        "is var(0, correction=0).sum() of a class."
    )


def supervised_features(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(vectors [n, d], labels [n])`` → [n_values, d]: per value (sorted), its mean vector minus the overall mean."""
    from saekit.supervised import fit_supervised_dictionary

    name = "supervised_features"
    rng = _rng()
    # unequal counts per value (an unweighted mean of the class means differs from the overall
    # mean), labels that are neither 0..k-1 nor sorted, an offset every feature must lose
    labels = torch.tensor([7, 7, 7, 7, 7, 2, 2, 11, 7, 2])
    vectors = torch.randn(10, 3, generator=rng) + torch.tensor([5.0, -1.0, 2.0])
    got = _tensor(name, _call(name, fn, vectors.clone(), labels.clone()), (3, 3))
    want = fit_supervised_dictionary(vectors[:, None], {"v": labels}).features["v"][:, 0]
    class_means = torch.stack([vectors[labels == value].mean(0) for value in (2, 7, 11)])
    if torch.allclose(got, class_means, atol=1e-5):
        raise ExerciseFailed(
            f"{name}: you returned the class means; subtract the mean of all vectors, so that a feature is what "
            "the value adds to the head's usual write."
        )
    if torch.allclose(got, class_means - class_means.mean(0), atol=1e-5):
        raise ExerciseFailed(
            f"{name}: you centred on the mean of the class means; values with more prompts weigh more in the "
            "overall mean: subtract vectors.mean(0)."
        )
    if torch.allclose(got, torch.stack([vectors[labels == value].sum(0) for value in (2, 7, 11)]) / 10 - vectors.mean(0), atol=1e-5):
        raise ExerciseFailed(f"{name}: you divided each value's sum by all n vectors; divide by that value's own count.")
    if not torch.allclose(got, want, atol=1e-5):
        raise ExerciseFailed(
            f"{name}: expected\n{want}\ngot\n{got}.\nRows follow the values in sorted order (labels.unique())."
        )
    _passed(name)
