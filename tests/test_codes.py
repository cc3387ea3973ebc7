"""Argmax codes, the NO_CODE sentinel, the signed rule, activation levels, and encoding head vectors
with an SAE."""

from __future__ import annotations

import pytest
import torch

from saekit.codes import NO_CODE, codes_from_latents, head_codes, level_edges, n_codes
from saekit.errors import SAEError
from saekit.sae import SAEConfig, train_sae


def test_code_is_the_strongest_latent():
    latents = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.5]])
    assert codes_from_latents(latents).tolist() == [1, 0]


def test_all_zero_latents_get_no_code_not_latent_zero():
    latents = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    assert codes_from_latents(latents).tolist() == [NO_CODE, 0]


def test_signed_codes_keep_the_sign_of_the_largest_magnitude():
    latents = torch.tensor([[0.5, -2.0, 1.0], [0.5, 2.0, -1.0], [0.0, 0.0, 0.0]])
    assert codes_from_latents(latents, signed=True).tolist() == [1 + 3, 1, NO_CODE]
    assert n_codes(3, signed=True) == 6 and n_codes(3) == 3


def test_codes_keep_leading_dimensions():
    latents = torch.rand(4, 5, 7)
    assert codes_from_latents(latents).shape == (4, 5)


def test_non_finite_latents_are_refused():
    with pytest.raises(SAEError, match="NaN"):
        codes_from_latents(torch.tensor([[float("nan"), 1.0]]))


@pytest.fixture(scope="module")
def small_sae():
    samples = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    return train_sae(samples, SAEConfig(d_sae=16, steps=20))


def test_head_codes_equal_argmax_of_encoded_vectors(small_sae):
    vectors = torch.randn(5, 3, 8, generator=torch.Generator().manual_seed(1))
    expected = codes_from_latents(small_sae.encode(vectors))
    assert torch.equal(head_codes(small_sae, vectors), expected)
    assert torch.equal(head_codes(small_sae, vectors, batch_size=4), expected)


def test_head_codes_refuse_activations_of_another_width(small_sae):
    with pytest.raises(SAEError, match="width 8.*'z' is d_head wide"):
        head_codes(small_sae, torch.randn(5, 3, 12))


def test_level_codes_tell_sizes_apart_where_argmax_codes_cannot():
    """Two latent vectors of one direction and different size: one argmax code, two level codes."""
    training = torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 3.0, 0.0], [0.0, 4.0, 0.0], [5.0, 0.0, 0.0]])
    edges = level_edges(training, n_levels=2)
    small, large = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 4.0, 0.0])
    assert codes_from_latents(small) == codes_from_latents(large) == 1
    assert edges[1].tolist() == [2.5]  # the median of latent 1's winning values
    assert codes_from_latents(torch.stack([small, large]), level_edges=edges).tolist() == [1 * 2 + 0, 1 * 2 + 1]
    # latent 0 won once (its edge is that value); latent 2 never won: the pooled median of all winners
    assert edges[0].tolist() == [5.0] and edges[2].tolist() == [3.0]


def test_level_codes_stay_in_their_range():
    generator = torch.Generator().manual_seed(0)
    for signed in (False, True):
        latents = torch.randn(200, 6, generator=generator)
        latents = latents if signed else latents.relu()
        latents[:5] = 0.0  # some vectors with no code
        edges = level_edges(latents[:50], n_levels=4, signed=signed)
        assert edges.shape == (6, 3) and (edges.diff(dim=1) >= 0).all()
        codes = codes_from_latents(latents, signed=signed, level_edges=edges)
        fired = (latents != 0).any(-1)
        assert (codes[~fired] == NO_CODE).all() and not fired[:5].any()
        real = codes[fired]
        assert real.min() >= 0 and real.max() < n_codes(6, signed=signed, n_levels=4)
        assert torch.equal(real // 4, codes_from_latents(latents[fired], signed=signed))  # the argmax code survives
        assert set((real % 4).tolist()) == {0, 1, 2, 3}


def test_level_edges_refuse_bad_input():
    with pytest.raises(SAEError, match="n_levels must be an integer of at least 2"):
        level_edges(torch.rand(4, 3), n_levels=1)
    with pytest.raises(SAEError, match="n_levels must be an integer of at least 2"):
        level_edges(torch.rand(4, 3), n_levels=True)
    with pytest.raises(SAEError, match="No latent fires"):
        level_edges(torch.zeros(4, 3), n_levels=2)
    with pytest.raises(SAEError, match="do not fit latents of width 3"):
        codes_from_latents(torch.rand(4, 3), level_edges=torch.zeros(5, 1))


def test_head_codes_with_levels_refine_argmax_codes(small_sae):
    vectors = torch.randn(5, 3, 8, generator=torch.Generator().manual_seed(1))
    edges = level_edges(small_sae.encode(vectors.reshape(-1, 8)).detach(), n_levels=3)
    levelled = head_codes(small_sae, vectors, level_edges=edges, batch_size=4)
    assert torch.equal(levelled, codes_from_latents(small_sae.encode(vectors), level_edges=edges))
    assert torch.equal(levelled.div(3, rounding_mode="floor"), head_codes(small_sae, vectors))
