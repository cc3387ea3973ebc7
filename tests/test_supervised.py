"""Supervised feature dictionaries: fitted features by hand, held-out explained variance, SAE
alignment and code information on constructed cases, the task's own variables, bad input."""

from __future__ import annotations

import pytest
import torch

from saekit.errors import ActivationError
from saekit.sae import train_sae
from saekit.sae.config import SAEConfig
from saekit.supervised import (
    code_information,
    decoder_directions,
    explained_variance,
    feature_alignment,
    fit_supervised_dictionary,
    task_variables,
)
from saekit.tasks.toy import toy_pairs


def planted(n_prompts: int, noise: float, seed: int = 0):
    """Two heads of width 3: head 0 = base + f[a] + g[b] + noise, head 1 = noise only."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 4, (n_prompts,), generator=generator)
    b = torch.randint(0, 3, (n_prompts,), generator=generator)
    f, g = torch.randn(4, 3, generator=generator), torch.randn(3, 3, generator=generator)
    vectors = noise * torch.randn(n_prompts, 2, 3, generator=generator)
    vectors[:, 0] += torch.tensor([1.0, -2.0, 0.5]) + f[a] + g[b]
    return vectors, {"a": a, "b": b}


def test_features_are_conditional_means_minus_the_mean_by_hand():
    vectors = torch.tensor([[[1.0]], [[3.0]], [[8.0]], [[0.0]]])  # one head, width 1
    dictionary = fit_supervised_dictionary(vectors, {"v": torch.tensor([5, 5, 9, 2])})
    assert dictionary.mean.item() == 3.0
    assert dictionary.values["v"].tolist() == [2, 5, 9]
    assert dictionary.features["v"].flatten().tolist() == [-3.0, -1.0, 5.0]  # 0-3, 2-3, 8-3


def test_an_additive_variable_structure_is_recovered_on_held_out_prompts():
    vectors, variables = planted(4000, noise=0.01)
    fit = slice(0, 3000)
    dictionary = fit_supervised_dictionary(vectors[fit], {k: v[fit] for k, v in variables.items()})
    held_out = {k: v[3000:] for k, v in variables.items()}
    explained = explained_variance(dictionary, vectors[3000:], held_out)
    assert explained[0] > 0.99  # the variables are all there is to head 0
    assert abs(explained[1]) < 0.01  # nothing of head 1 (noise)
    one_variable = fit_supervised_dictionary(vectors[fit], {"a": variables["a"][fit]})
    assert explained_variance(one_variable, vectors[3000:], {"a": held_out["a"]})[0] < 0.9  # b's part is missing


def test_a_value_never_seen_in_fitting_adds_nothing():
    dictionary = fit_supervised_dictionary(torch.tensor([[[2.0]], [[4.0]]]), {"v": torch.tensor([0, 1])})
    reconstructed = dictionary.reconstruct({"v": torch.tensor([1, 7, -3])})
    assert reconstructed.flatten().tolist() == [4.0, 3.0, 3.0]


def test_feature_alignment_is_one_for_a_decoder_holding_the_feature():
    vectors, variables = planted(400, noise=0.0)
    dictionary = fit_supervised_dictionary(vectors, variables)
    sae = train_sae(vectors.flatten(0, 1), SAEConfig(d_sae=8, steps=5))
    with torch.no_grad():
        sae.W_dec[0] = torch.nn.functional.normalize(dictionary.features["a"][2, 0], dim=0)
    alignment = feature_alignment(dictionary, decoder_directions(sae))
    assert alignment["a"][2, 0].item() == pytest.approx(1.0, abs=1e-5)
    assert alignment["a"].shape == (4, 2) and alignment["b"].shape == (3, 2)
    assert (alignment["a"] <= 1 + 1e-5).all()


def test_signed_saes_are_aligned_with_negated_directions_too():
    vectors, variables = planted(400, noise=0.0)
    dictionary = fit_supervised_dictionary(vectors, variables)
    sae = train_sae(vectors.flatten(0, 1), SAEConfig(architecture="abstopk", d_sae=8, steps=5))
    assert sae.signed
    with torch.no_grad():
        sae.W_dec[0] = -torch.nn.functional.normalize(dictionary.features["a"][1, 0], dim=0)
    assert feature_alignment(dictionary, decoder_directions(sae))["a"][1, 0].item() == pytest.approx(1.0, abs=1e-5)
    unsigned = train_sae(vectors.flatten(0, 1), SAEConfig(d_sae=8, steps=5))
    with torch.no_grad():
        unsigned.W_dec[0] = sae.W_dec[0]
    assert decoder_directions(unsigned).shape == (8, 3) and decoder_directions(sae).shape == (16, 3)
    assert feature_alignment(dictionary, decoder_directions(unsigned))["a"][1, 0].item() < 1 - 1e-3


def test_code_information_is_one_for_a_relabelling_and_near_zero_for_unrelated_codes():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (2000,), generator=generator)
    codes = torch.stack([(labels * 7 + 3) % 11, torch.randint(0, 5, (2000,), generator=generator)], dim=1)
    information = code_information(codes, labels)
    assert information[0].item() == pytest.approx(1.0)
    assert abs(information[1].item()) < 0.01


def test_task_variables_are_the_answer_token_and_template(toy_4l):
    from saekit.tasks import make_task

    task = make_task("ioi", toy_4l, n_pairs=6, seed=3)
    variables = task_variables(task)
    pairs = toy_pairs("ioi", 6, 3)
    tokenizer = toy_4l.tokenizer
    assert [tokenizer.convert_ids_to_tokens(int(i)) for i in variables["answer"]] == [p.answers[0] for p in pairs]
    assert variables["template"].tolist() == [p.template_id for p in pairs]


@pytest.mark.parametrize(
    "vectors, variables, match",
    [
        (torch.zeros(4, 3), {"v": torch.zeros(4, dtype=torch.long)}, "shape"),
        (torch.zeros(4, 2, 3), {}, "at least one variable"),
        (torch.zeros(4, 2, 3), {"v": torch.zeros(5, dtype=torch.long)}, "one integer label per prompt"),
        (torch.zeros(4, 2, 3), {"v": torch.zeros(4)}, "one integer label per prompt"),
    ],
)
def test_bad_input_is_refused_with_the_fix(vectors, variables, match):
    with pytest.raises(ActivationError, match=match):
        fit_supervised_dictionary(vectors, variables)


def test_mismatched_shapes_are_refused():
    dictionary = fit_supervised_dictionary(torch.zeros(4, 2, 3), {"v": torch.arange(4)})
    with pytest.raises(ActivationError, match="heads and width"):
        explained_variance(dictionary, torch.zeros(4, 3, 3), {"v": torch.arange(4)})
    with pytest.raises(ActivationError, match="missing"):
        dictionary.reconstruct({"w": torch.arange(4)})
    with pytest.raises(ActivationError, match="same activation kind"):
        feature_alignment(dictionary, torch.zeros(5, 4))
    with pytest.raises(ActivationError, match="same prompts"):
        code_information(torch.zeros(4, 2, dtype=torch.long), torch.arange(5))
