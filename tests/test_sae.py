"""The SAE stage's contract: config, training, metrics, and the sae-lens folder format."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from saekit.errors import SAEError
from saekit.sae import (
    ARCHITECTURES,
    SAEConfig,
    load_sae,
    reconstruction_metrics,
    save_sae,
    train_sae,
)

HAS_SAE_LENS = importlib.util.find_spec("sae_lens") is not None


def structured_samples(n: int = 160, d_in: int = 24, seed: int = 0) -> torch.Tensor:
    """Sparse non-negative mixtures of a few directions plus an offset: something to learn."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(12, d_in, generator=generator)
    weights = torch.rand(n, 12, generator=generator)
    weights = weights * (torch.rand(n, 12, generator=generator) < 0.2)
    return 0.5 + weights @ directions


@pytest.fixture(scope="module")
def samples() -> torch.Tensor:
    return structured_samples()


@pytest.fixture(scope="module")
def trained(samples):
    return train_sae(samples, SAEConfig(d_sae=40, steps=200))


def test_config_defaults_are_the_papers():
    config = SAEConfig()
    assert (config.architecture, config.d_sae, config.l1_coefficient) == ("relu", 200, 0.02)
    assert (config.lr, config.steps, config.seed) == (1e-3, 500, 0)


def test_config_round_trips_through_json():
    config = SAEConfig(architecture="relu", d_sae=17, l1_coefficient=0.05, seed=3)
    assert SAEConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"architecture": "gated"}, "relu"),  # the message lists the registry
        ({"d_sae": 0}, "d_sae"),
        ({"steps": 2.5}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"l1_coefficient": math.nan}, "l1_coefficient"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(fields, fragment):
    with pytest.raises(SAEError, match=fragment):
        SAEConfig(**fields)


def test_unknown_architecture_lists_every_registered_one():
    with pytest.raises(SAEError) as info:
        SAEConfig(architecture="nope")
    assert all(name in str(info.value) for name in ARCHITECTURES)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(SAEError, match="l2_coefficient"):
        SAEConfig.from_dict({"l2_coefficient": 1.0})


def test_training_is_deterministic_per_seed_and_leaves_global_rng_alone(samples):
    rng_state = torch.get_rng_state()
    first = train_sae(samples, SAEConfig(d_sae=30, steps=20, seed=1))
    assert torch.equal(torch.get_rng_state(), rng_state)
    again = train_sae(samples, SAEConfig(d_sae=30, steps=20, seed=1))
    other = train_sae(samples, SAEConfig(d_sae=30, steps=20, seed=2))
    for name, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name
    assert not torch.equal(first.W_dec, other.W_dec)


def test_relu_sae_is_the_papers_equations(trained, samples):
    assert trained.signed is False
    assert (trained.d_in, trained.d_sae, trained.config.d_sae) == (24, 40, 40)
    expected = torch.relu((samples - trained.b_dec) @ trained.W_enc + trained.b_enc)
    latents = trained.encode(samples)
    torch.testing.assert_close(latents, expected)
    torch.testing.assert_close(trained.decode(latents), latents @ trained.W_dec + trained.b_dec)
    torch.testing.assert_close(trained(samples), trained.decode(latents))
    torch.testing.assert_close(trained.W_dec.norm(dim=-1), torch.ones(40))


def test_encode_keeps_leading_dimensions(trained, samples):
    batch = samples[:12].reshape(3, 4, 24)
    assert trained.encode(batch).shape == (3, 4, 40)
    torch.testing.assert_close(trained.encode(batch).reshape(12, 40), trained.encode(samples[:12]))


def test_training_learns_the_data(trained, samples):
    metrics = reconstruction_metrics(trained, samples)
    untrained = reconstruction_metrics(train_sae(samples, SAEConfig(d_sae=40, steps=1)), samples)
    assert metrics["explained_variance"] > 0.8
    assert metrics["mse"] < untrained["mse"] / 5
    assert 0 < metrics["l0"] < 40


def test_l1_penalty_makes_latents_sparser(samples):
    weak = train_sae(samples, SAEConfig(d_sae=40, steps=200, l1_coefficient=0.0))
    strong = train_sae(samples, SAEConfig(d_sae=40, steps=200, l1_coefficient=0.2))
    l0 = {name: reconstruction_metrics(sae, samples)["l0"] for name, sae in [("s", strong), ("w", weak)]}
    assert l0["s"] < l0["w"]


def test_explained_variance_is_about_the_mean(samples):
    """An SAE whose latents never fire and whose bias is the mean explains nothing."""
    sae = train_sae(samples, SAEConfig(d_sae=6, steps=1))
    with torch.no_grad():
        sae.b_dec.copy_(samples.mean(0))
        sae.b_enc.fill_(-1e6)
    metrics = reconstruction_metrics(sae, samples)
    assert metrics["explained_variance"] == pytest.approx(0.0, abs=1e-5)
    assert (metrics["l0"], metrics["dead_fraction"]) == (0.0, 1.0)
    assert metrics["feature_density"] == [0.0] * 6


def test_l0_density_and_dead_fraction_count_active_latents(samples):
    sae = train_sae(samples, SAEConfig(d_sae=4, steps=1))
    with torch.no_grad():
        # Latent 0 always fires, latent 1 never, latents 2 and 3 on the first half of samples.
        sae.W_enc.zero_()
        sae.b_dec.zero_()
        sae.W_enc[0, 2:] = 1.0
        sae.b_enc.copy_(torch.tensor([1.0, -1.0, 0.0, 0.0]))
    x = torch.zeros(10, 24)
    x[:5, 0] = 1.0
    metrics = reconstruction_metrics(sae, x)
    assert metrics["feature_density"] == [1.0, 0.0, 0.5, 0.5]
    assert metrics["l0"] == pytest.approx(2.0)
    assert metrics["dead_fraction"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (torch.ones(10), "shape"),
        (torch.ones(10, 4, dtype=torch.long), "floating-point"),
        (torch.ones(1, 4), "at least 2"),
        (torch.tensor([[1.0, math.nan], [0.0, 1.0]]), "NaN"),
        ([[1.0, 2.0], [3.0, 4.0]], "torch.Tensor"),
    ],
)
def test_train_sae_rejects_bad_samples(bad, fragment):
    with pytest.raises(SAEError, match=fragment):
        train_sae(bad, SAEConfig(steps=1))


def test_divergence_raises_instead_of_returning_nan(samples):
    with pytest.raises(SAEError, match="diverged"):
        train_sae(samples * 1e30, SAEConfig(d_sae=8, steps=3))


def test_width_mismatch_names_both_widths(trained):
    with pytest.raises(SAEError, match=r"width 24.*width 7"):
        trained.encode(torch.ones(3, 7))
    with pytest.raises(SAEError, match=r"width 40.*width 24"):
        trained.decode(torch.ones(3, 24))


def test_float64_samples_train_a_float64_sae(samples):
    sae = train_sae(samples.double(), SAEConfig(d_sae=8, steps=5))
    assert sae.W_dec.dtype == torch.float64
    assert sae.encode(samples.double()).dtype == torch.float64


def test_save_and_load_round_trip(trained, samples, tmp_path):
    folder = save_sae(trained, tmp_path / "sae")
    loaded = load_sae(folder)
    assert loaded.config == trained.config
    torch.testing.assert_close(loaded.encode(samples), trained.encode(samples), rtol=0, atol=0)


def test_float64_sae_loads_as_float64(samples, tmp_path):
    sae = train_sae(samples.double(), SAEConfig(d_sae=8, steps=5))
    loaded = load_sae(save_sae(sae, tmp_path / "sae"))
    assert loaded.W_dec.dtype == torch.float64
    torch.testing.assert_close(loaded.W_dec, sae.W_dec, rtol=0, atol=0)


def test_saved_folder_has_the_sae_lens_layout(trained, tmp_path):
    folder = save_sae(trained, tmp_path / "sae")
    weights = load_file(folder / "sae_weights.safetensors")
    assert {name: tuple(t.shape) for name, t in weights.items()} == {
        "W_enc": (24, 40), "b_enc": (40,), "W_dec": (40, 24), "b_dec": (24,),
    }
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == "standard"
    assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"]) == (24, 40, "float32")
    assert cfg["apply_b_dec_to_input"] is True
    assert cfg["normalize_activations"] == "none"
    assert cfg["metadata"]["sae_lens_version"].startswith("6.")


def test_sae_lens_reads_the_folder(trained, samples, tmp_path):
    """With sae-lens installed (TransformerLens 3.9 env) its loader must encode like ours."""
    folder = save_sae(trained, tmp_path / "sae")
    if not HAS_SAE_LENS:
        # The TransformerLens 4 env has no sae-lens: the layout test above covers the files.
        assert load_file(folder / "sae_weights.safetensors")["W_enc"].shape == (24, 40)
        return
    from sae_lens import SAE as SaeLensSAE

    theirs = SaeLensSAE.load_from_disk(folder)
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(samples), trained.encode(samples))
        torch.testing.assert_close(theirs(samples), trained(samples))


def test_load_sae_explains_what_is_missing(tmp_path):
    with pytest.raises(SAEError, match="cfg.json"):
        load_sae(tmp_path)


@pytest.mark.parametrize("damage", ["not json", "no d_in", "no threshold"])
def test_load_sae_refuses_a_damaged_folder(samples, tmp_path, damage):
    folder = save_sae(train_sae(samples, SAEConfig(architecture="jumprelu", d_sae=8, steps=5)), tmp_path / "sae")
    cfg = json.loads((folder / "cfg.json").read_text())
    if damage == "not json":
        (folder / "cfg.json").write_text("{")
    elif damage == "no d_in":
        del cfg["d_in"]
        (folder / "cfg.json").write_text(json.dumps(cfg))
    else:
        weights = load_file(folder / "sae_weights.safetensors")
        del weights["threshold"]
        save_file(weights, folder / "sae_weights.safetensors")
    with pytest.raises(SAEError, match="(?i)save the SAE again with save_sae"):
        load_sae(folder)


def test_training_works_where_a_notebook_switched_gradients_off():
    """Notebook 01 runs torch.set_grad_enabled(False); an SAE trained later in that kernel still trains."""
    samples = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    previous = torch.is_grad_enabled()
    try:
        torch.set_grad_enabled(False)
        sae = train_sae(samples, SAEConfig(d_sae=16, steps=20))
        assert not torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(previous)
    assert torch.isfinite(sae.W_enc).all()
