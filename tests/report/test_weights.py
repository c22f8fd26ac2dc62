"""The weight statistics of the model report: moments against scipy, power-law fits on spectra
with a known answer, top-k shares of a low-rank matrix, and the whole analysis of a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from vidray.report.weights import (
    analyse,
    analyse_model_dir,
    effective_rank,
    esd,
    layer_stats,
    load_state_dict,
    moments,
    plot_spectra,
    plot_topk,
    power_law_fit,
    singular_values,
    stable_rank,
    topk_share,
    weight_matrices,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def pareto(alpha: float, n: int, seed: int = 0) -> np.ndarray:
    """A sample with density ∝ x^-alpha above 1 (inverse CDF)."""
    u = np.random.default_rng(seed).random(n)
    return (1 - u) ** (-1 / (alpha - 1))


@pytest.mark.parametrize("shape", [(1000,), (40, 30), (8, 4, 3, 3)])
def test_moments_match_scipy(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, size=shape).astype(np.float32)  # skewed: a moment off by a term shows
    got = moments(x)
    flat = x.astype(np.float64).ravel()
    assert got["mean"] == pytest.approx(flat.mean(), rel=1e-12)
    assert got["std"] == pytest.approx(flat.std(), rel=1e-12)
    assert got["skewness"] == pytest.approx(stats.skew(flat), rel=1e-9)
    assert got["kurtosis"] == pytest.approx(stats.kurtosis(flat, fisher=True), rel=1e-9)


def test_constant_tensor_has_no_shape_moments() -> None:
    got = moments(np.full((3, 7), 0.1, np.float32))  # 0.1 rounds: a computed mean would too
    assert got["std"] == 0.0
    assert got["skewness"] is None and got["kurtosis"] is None
    assert json.dumps(got)


def test_matrices_and_layers_from_a_state_dict() -> None:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
        torch.nn.Linear(5, 1),  # a row vector: no spectrum
    )
    state = dict(net.state_dict())
    state["table.weight"] = torch.nn.EmbeddingBag(10, 4).weight.detach()
    matrices = dict(weight_matrices(state))
    assert list(matrices) == ["0.weight", "3.weight", "table.weight"]
    assert matrices["0.weight"].shape == (8, 27)
    np.testing.assert_array_equal(matrices["0.weight"][2], state["0.weight"][2].numpy().ravel())
    assert matrices["3.weight"].shape == (5, 8)

    names = [r["name"] for r in layer_stats(state)]
    assert "0.bias" in names and "1.weight" in names  # biases and norms have moments
    assert not any(
        n.endswith(("running_mean", "running_var", "num_batches_tracked")) for n in names
    )
    assert "4.bias" not in names  # one element: no moments

    state["3.weight"][0, 0] = float("nan")  # a diverged run: counted, no spectrum, JSON still
    assert "3.weight" not in dict(weight_matrices(state))
    row = next(r for r in layer_stats(state) if r["name"] == "3.weight")
    assert row["nonfinite"] == 1 and np.isfinite(row["std"])
    assert json.loads(json.dumps(layer_stats(state), allow_nan=False))


def test_singular_values_and_esd() -> None:
    w = np.random.default_rng(2).normal(size=(60, 25))
    s = singular_values(w)
    np.testing.assert_allclose(s, np.linalg.svd(w, compute_uv=False), rtol=1e-10)
    np.testing.assert_allclose(singular_values(w.T), s, rtol=1e-10)
    assert np.all(np.diff(s) <= 0)
    lam = esd(s, 60)
    np.testing.assert_allclose(np.sort(lam), np.linalg.eigvalsh(w.T @ w / 60), rtol=1e-10)


def test_power_law_fit_recovers_a_known_alpha() -> None:
    fit = power_law_fit(pareto(2.5, 2000))
    assert fit is not None
    assert fit["alpha"] == pytest.approx(2.5, abs=0.15)
    assert fit["n"] == 2000 and fit["n_tail"] > 1000
    assert fit["ks_distance"] < 0.05
    assert fit["alpha_stderr"] == pytest.approx((fit["alpha"] - 1) / np.sqrt(fit["n_tail"]))
    # Scale-free: multiplying the spectrum moves xmin, not alpha.
    scaled = power_law_fit(pareto(2.5, 2000) * 1e-3)
    assert scaled is not None
    assert scaled["alpha"] == pytest.approx(fit["alpha"], rel=1e-9)
    assert scaled["xmin"] == pytest.approx(fit["xmin"] * 1e-3, rel=1e-9)


def test_power_law_fit_of_a_random_matrix_is_not_heavy_tailed() -> None:
    # A Gaussian matrix's spectrum is Marchenko-Pastur: bounded, no power-law tail. Its fitted
    # alpha swings with the seed (4.5 to 20 over seeds 0-9), the poor fit (KS 0.12-0.14) does not.
    w = np.random.default_rng(3).normal(size=(1000, 500))
    fit = power_law_fit(esd(singular_values(w), 1000))
    assert fit is not None
    assert fit["alpha"] > 4
    assert fit["ks_distance"] > 0.1


def test_power_law_fit_needs_enough_eigenvalues() -> None:
    assert power_law_fit(np.array([3.0, 2.0, 1.0, 0.5])) is None
    assert power_law_fit(np.array([]), min_tail=1) is None
    assert power_law_fit(np.ones(20)) is None  # no tail that is not constant
    assert power_law_fit(np.r_[np.zeros(50), np.ones(3)]) is None  # zeros are no tail


def test_topk_share_of_a_rank_three_matrix() -> None:
    rng = np.random.default_rng(4)
    w = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 30))
    s = singular_values(w)
    share = topk_share(s, ks=(1, 2, 3, 4, 8, 16, 32, 64))
    assert share[3] == pytest.approx(1.0, abs=1e-9)
    assert share[1] < 1.0
    values = [share[k] for k in sorted(share)]
    assert np.all(np.diff(values) >= 0)
    assert 32 not in share and 64 not in share  # beyond the 30 singular values
    assert stable_rank(s) == pytest.approx((s**2).sum() / s[0] ** 2)
    assert 1.0 < effective_rank(s) <= 3.0 + 1e-6  # type: ignore[operator]
    assert topk_share(np.zeros(5)) == {} and stable_rank(np.zeros(5)) is None


def test_analysis_of_the_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    state = load_state_dict(tiny_model_dir)
    analysis = analyse(state)
    assert analysis == json.loads(json.dumps(analysis, allow_nan=False))  # plain JSON

    expected = {
        name
        for name, t in state.items()
        if name.endswith("weight") and t.ndim >= 2 and min(t.shape[0], t[0].numel()) >= 2
    }
    assert any("conv" in n for n in expected) and "head.weight" in expected
    matrices = {m["name"]: m for m in analysis["matrices"]}
    assert set(matrices) == expected
    for name, m in matrices.items():
        assert m["shape"] == [state[name].shape[0], state[name][0].numel()]
        assert m["spectral_norm"] > 0
        assert 0 < m["topk"]["1"] <= 1
        assert len(m["eigenvalues"]) == len(m["eigenvalue_ranks"]) <= m["n_eigenvalues"]
    assert {r["name"] for r in analysis["layers"]} >= expected
    assert analysis["summary"]["params"] == sum(r["params"] for r in analysis["layers"])
    assert analysis == analyse_model_dir(tiny_model_dir)

    paths = [tmp_path / "spectra.png", tmp_path / "topk.png"]
    plot_spectra(analysis, paths[0])
    plot_topk(analysis, paths[1])
    for path in paths:
        assert path.stat().st_size > 1000
        with Image.open(path) as image:
            image.verify()
