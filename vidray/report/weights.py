"""The statistical view of a trained network, for `vidray report --model-dir`: weight moments per
layer, each weight matrix's eigenvalue spectrum with a power-law fit of its tail, and how much of
each matrix its top singular vectors hold.

The spectral part follows heavy-tailed self-regularisation (Martin & Mahoney; the WeightWatcher
tool): the eigenvalues of a weight matrix's correlation matrix WᵀW/N, the N×M matrix read with
N ≥ M, are fitted above some xmin by a power law p(λ) ∝ λ^-alpha (Clauset, Shalizi & Newman).
Read alpha as a rough gauge of how much a layer learnt: near 2-6 for well-trained layers; above
about 6 the spectrum looks like that of a random matrix (little learnt, or the layer too small to
tell); below 2 very heavy-tailed (possibly over-fitted). A fit on a dozen eigenvalues, as in a
tiny test model, means little: `alpha_stderr` and `n_tail` say how little.

Everything `analyse` returns is plain JSON (the HTML report embeds it); the two figures are drawn
from that dict alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidray.query import MODEL_FILE
from vidray.train.plots import _pyplot, _save

TOPK = (1, 2, 4, 8, 16, 32, 64)
MIN_TAIL = 5  # fewest eigenvalues a power-law tail is fitted on
ZERO = 1e-12  # eigenvalues below this fraction of the largest are rank deficiency or rounding
PLOT_POINTS = 512  # eigenvalues kept per matrix for the spectrum figure
KS_CHUNK = 256  # candidate xmins whose KS distances are computed in one array
MAX_PANELS = 24  # spectra drawn: the largest matrices
MAX_ROWS = 48  # matrices in the top-k heat map: the largest
# BatchNorm's statistics are in the state dict beside the parameters but were never trained.
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


# --- tensors ----------------------------------------------------------------------------------


def _array(tensor: Any) -> np.ndarray | None:
    """A torch tensor or numpy array → a numpy array, or None when it is not floating-point."""
    if hasattr(tensor, "detach"):
        if not tensor.is_floating_point():
            return None
        tensor = tensor.detach().cpu()
        if tensor.dtype.itemsize < 4:  # numpy has no bfloat16
            tensor = tensor.float()
        return np.asarray(tensor.numpy())
    array = np.asarray(tensor)
    return array if np.issubdtype(array.dtype, np.floating) else None


def parameters(state_dict: Mapping[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
    """The floating-point parameters of a state dict with two elements or more, in its order:
    no integer tensors, no BatchNorm running statistics."""
    for name, tensor in state_dict.items():
        if name.endswith(BUFFER_SUFFIXES):
            continue
        array = _array(tensor)
        if array is not None and array.size >= 2:
            yield name, array


def weight_matrices(state_dict: Mapping[str, Any]) -> list[tuple[str, np.ndarray]]:
    """The 2-D views of a state dict that are analysed as matrices: Linear and Embedding weights
    as they are, a convolution's [out, in, kh, kw] (any tensor of 3 or more dimensions) as
    [out, in·kh·kw]. 1-D tensors (biases, norms), matrices with a side under 2 and matrices with
    NaN or inf (a diverged run: `layer_stats` counts those values) are left out."""
    out = []
    for name, array in parameters(state_dict):
        if array.ndim < 2:
            continue
        matrix = array.reshape(array.shape[0], -1)
        if min(matrix.shape) >= 2 and np.isfinite(matrix).all():
            out.append((name, matrix))
    return out


# --- moments ----------------------------------------------------------------------------------


def moments(values: np.ndarray) -> dict[str, float | None]:
    """Population mean, std, skewness and kurtosis (excess, Fisher's: 0 for a Gaussian), in
    float64. A constant tensor has std 0 and no skewness or kurtosis (None, not NaN: the report
    is JSON); no values have no moments."""
    x = np.asarray(values, np.float64).ravel()
    if not x.size:
        return {"mean": None, "std": None, "skewness": None, "kurtosis": None}
    mean = float(x.mean())
    if x.max() == x.min():  # exact: a rounded mean would leave a spurious, tiny spread
        return {"mean": mean, "std": 0.0, "skewness": None, "kurtosis": None}
    d = x - mean
    d2 = d * d
    var = float(d2.mean())
    return {
        "mean": mean,
        "std": var**0.5,
        "skewness": float((d2 * d).mean()) / var**1.5,
        "kurtosis": float((d2 * d2).mean()) / var**2 - 3.0,
    }


def layer_stats(state_dict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per parameter tensor (see `parameters`): name, shape, params, nonfinite (NaN and inf
    values, which a diverged run leaves), and min, max and `moments` of the finite values."""
    rows = []
    for name, array in parameters(state_dict):
        finite = array[np.isfinite(array)]
        rows.append(
            {
                "name": name,
                "shape": list(array.shape),
                "params": int(array.size),
                "nonfinite": int(array.size - finite.size),
                "min": float(finite.min()) if finite.size else None,
                "max": float(finite.max()) if finite.size else None,
                **moments(finite),
            }
        )
    return rows


# --- spectra ----------------------------------------------------------------------------------


def singular_values(matrix: Any) -> np.ndarray:
    """Singular values of a 2-D array or tensor, descending, float64.

    Taken as the square roots of the eigenvalues of the smaller Gram matrix, in float64: several
    times faster than an SVD on CPU (a 4096² matrix in ~15 s rather than ~50 s), and accurate to
    about 1e-8 of the largest singular value, finer than float32 weights carry."""
    import torch

    m = torch.as_tensor(matrix).detach().to("cpu", torch.float64)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    eigenvalues = torch.linalg.eigvalsh(gram).numpy()[::-1]
    return np.sqrt(np.clip(eigenvalues, 0.0, None))


def esd(singular: np.ndarray, n: int) -> np.ndarray:
    """The empirical spectral density's eigenvalues λ = s²/N of the correlation matrix WᵀW/N
    (N the matrix's larger side), in the order of the singular values given."""
    s = np.asarray(singular, np.float64)
    return s * s / n


def _ks_distances(
    logs: np.ndarray, starts: np.ndarray, alpha: np.ndarray, n_tail: np.ndarray
) -> np.ndarray:
    """KS distance between each candidate tail's empirical CDF and its fitted power law; `logs`
    ascending, the tail of candidate i being logs[starts[i]:]."""
    out = np.empty(len(starts))
    for c in range(0, len(starts), KS_CHUNK):
        s, a, nt = starts[c : c + KS_CHUNK], alpha[c : c + KS_CHUNK], n_tail[c : c + KS_CHUNK]
        cols = np.arange(s[0], len(logs))  # candidates ascend: no tail starts left of s[0]
        pos = (cols[None, :] - s[:, None]).astype(np.float64)
        # min(…, 0): left of its xmin a candidate's exponent is positive and could overflow.
        expo = np.minimum((1 - a[:, None]) * (logs[None, cols] - logs[s][:, None]), 0.0)
        fitted = 1.0 - np.exp(expo)
        gap = np.maximum(
            np.abs(fitted - (pos + 1) / nt[:, None]), np.abs(fitted - pos / nt[:, None])
        )
        out[c : c + KS_CHUNK] = np.where(pos >= 0, gap, 0.0).max(axis=1)
    return out


def power_law_fit(eigenvalues: np.ndarray, min_tail: int = MIN_TAIL) -> dict[str, Any] | None:
    """Clauset-Shalizi-Newman fit of a continuous power law to the tail of a spectrum.

    For each distinct eigenvalue as xmin (leaving at least `min_tail` in the tail) the MLE
    alpha = 1 + n / Σ ln(λ/xmin), and the KS distance between the tail's empirical CDF and
    1 - (λ/xmin)^(1-alpha); the xmin with the smallest distance wins. Returns alpha, its
    standard error (alpha-1)/√n_tail, xmin, ks_distance, n_tail and n (eigenvalues given), or
    None with fewer than `min_tail` non-zero eigenvalues or no tail that is not constant."""
    x = np.sort(np.asarray(eigenvalues, np.float64).ravel())
    n = len(x)
    if n:
        x = x[x > max(x[-1], 0.0) * ZERO]
    if len(x) < min_tail:
        return None
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[i] = Σ_{j ≥ i} ln x_j
    _, first = np.unique(x, return_index=True)
    starts = first[len(x) - first >= min_tail]
    n_tail = len(x) - starts
    spread = suffix[starts] - n_tail * logs[starts]  # Σ ln(x/xmin) over the tail
    keep = spread > 0
    starts, n_tail, spread = starts[keep], n_tail[keep], spread[keep]
    if not len(starts):
        return None
    alpha = 1.0 + n_tail / spread
    ks = _ks_distances(logs, starts, alpha, n_tail)
    best = int(np.argmin(ks))
    return {
        "alpha": float(alpha[best]),
        "alpha_stderr": float((alpha[best] - 1) / np.sqrt(n_tail[best])),
        "xmin": float(x[starts[best]]),
        "ks_distance": float(ks[best]),
        "n_tail": int(n_tail[best]),
        "n": n,
    }


# --- low-rank structure -----------------------------------------------------------------------


def topk_share(singular: np.ndarray, ks: Sequence[int] = TOPK) -> dict[int, float]:
    """Share of the squared Frobenius norm Σs² that the top k singular vectors hold, for each k:
    how much of the layer a rank-k basis expansion keeps. A k beyond the number of singular
    values is left out (every vector is in: the share is 1 by construction); a zero matrix has
    no shares."""
    energy = np.cumsum(np.square(np.sort(np.asarray(singular, np.float64))[::-1]))
    if not len(energy) or energy[-1] <= 0:
        return {}
    return {int(k): float(energy[k - 1] / energy[-1]) for k in ks if 1 <= k <= len(energy)}


def stable_rank(singular: np.ndarray) -> float | None:
    """Σs² / s_max²: how many directions carry the norm; None for a zero matrix."""
    s = np.asarray(singular, np.float64)
    top = float(s.max()) if len(s) else 0.0
    return float(np.square(s).sum()) / top**2 if top > 0 else None


def effective_rank(singular: np.ndarray) -> float | None:
    """exp of the entropy of s/Σs (Roy & Vetterli's effective rank); None for a zero matrix."""
    s = np.asarray(singular, np.float64)
    total = float(s.sum())
    if total <= 0:
        return None
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


# --- one matrix, one model --------------------------------------------------------------------


def spectrum_points(
    eigenvalues: np.ndarray, cap: int = PLOT_POINTS
) -> tuple[list[int], list[float]]:
    """At most `cap` (rank, eigenvalue) points of the non-zero eigenvalues, largest first, at
    log-spaced ranks (1-based): enough to draw the spectrum's shape on log axes."""
    x = np.sort(np.asarray(eigenvalues, np.float64))[::-1]
    x = x[x > max(x[0], 0.0) * ZERO] if len(x) else x
    if not len(x):
        return [], []
    ranks = np.unique(np.round(np.geomspace(1, len(x), min(cap, len(x)))).astype(int))
    return ranks.tolist(), x[ranks - 1].tolist()


def matrix_summary(name: str, matrix: np.ndarray, ks: Sequence[int] = TOPK) -> dict[str, Any]:
    """A weight matrix's spectrum, power-law fit, ranks and top-k shares, as plain JSON."""
    s = singular_values(matrix)
    eigenvalues = esd(s, max(matrix.shape))
    fit = power_law_fit(eigenvalues) or {}
    ranks, points = spectrum_points(eigenvalues)
    return {
        "name": name,
        "shape": list(matrix.shape),
        "params": int(matrix.size),
        "spectral_norm": float(s[0]),
        "stable_rank": stable_rank(s),
        "effective_rank": effective_rank(s),
        **{k: fit.get(k) for k in ("alpha", "alpha_stderr", "xmin", "ks_distance", "n_tail")},
        "n_eigenvalues": len(eigenvalues),
        "topk": {str(k): v for k, v in topk_share(s, ks).items()},
        "eigenvalue_ranks": ranks,
        "eigenvalues": points,
    }


def summary(layers: list[dict[str, Any]], matrices: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline numbers: parameter count, matrices fitted, mean alpha, and WeightWatcher's
    alpha-weighted (mean of alpha·log10 λ_max, lower tends to go with better test accuracy)."""
    fitted = [m for m in matrices if m["alpha"] is not None]
    weighted = [m["alpha"] * np.log10(m["eigenvalues"][0]) for m in fitted]
    return {
        "params": sum(layer["params"] for layer in layers),
        "matrices": len(matrices),
        "fitted": len(fitted),
        "mean_alpha": float(np.mean([m["alpha"] for m in fitted])) if fitted else None,
        "alpha_weighted": float(np.mean(weighted)) if fitted else None,
    }


def analyse(state_dict: Mapping[str, Any], ks: Sequence[int] = TOPK) -> dict[str, Any]:
    """The whole statistical view of a state dict: {"summary", "layers", "matrices", "topk_ks"},
    JSON as it is. A matrix's "shape" is its 2-D view (a convolution flattened)."""
    layers = layer_stats(state_dict)
    matrices = [matrix_summary(name, m, ks) for name, m in weight_matrices(state_dict)]
    return {
        "summary": summary(layers, matrices),
        "layers": layers,
        "matrices": matrices,
        "topk_ks": [int(k) for k in ks],
    }


def load_state_dict(model_dir: str | Path) -> dict[str, Any]:
    """The weights in a model directory's `model.pt`, memory-mapped: no model is built, so
    neither Lightning's module nor spaCy is needed."""
    import torch

    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir}: not a `vidray train` model dir")
    saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return dict(saved["state_dict"])


def analyse_model_dir(model_dir: str | Path, ks: Sequence[int] = TOPK) -> dict[str, Any]:
    """`analyse` of the model a `vidray train` directory holds."""
    return analyse(load_state_dict(model_dir), ks)


# --- figures ----------------------------------------------------------------------------------


def _short(name: str) -> str:
    return name.removesuffix(".weight")


def _largest(matrices: list[dict[str, Any]], cap: int) -> list[dict[str, Any]]:
    """The `cap` matrices with the most parameters, in the model's order."""
    keep = sorted(range(len(matrices)), key=lambda i: -matrices[i]["params"])[:cap]
    return [matrices[i] for i in sorted(keep)]


def _note(fig: Any, shown: int, total: int) -> None:
    if shown < total:
        fig.text(0.01, 0.005, f"the {shown} largest of {total} weight matrices", fontsize=8)


def plot_spectra(analysis: dict[str, Any], path: Path, max_panels: int = MAX_PANELS) -> None:
    """One log-log panel per weight matrix: the fraction of eigenvalues ≥ λ (a power law is a
    straight line there), the fitted tail from xmin in red, alpha in the title."""
    plt = _pyplot()
    matrices = [m for m in analysis["matrices"] if m["eigenvalues"]]
    shown = _largest(matrices, max_panels)
    cols = max(1, min(4, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no weight matrices", ha="center", va="center")
    for ax, m in zip(axes.flat, shown, strict=False):
        n = m["n_eigenvalues"]
        ax.loglog(m["eigenvalues"], np.array(m["eigenvalue_ranks"]) / n, ".", ms=3)
        title = f"{_short(m['name'])} {m['shape'][0]}×{m['shape'][1]}"
        if m["alpha"] is None:
            title += "\nno power-law fit"
        else:
            xs = np.geomspace(m["xmin"], m["eigenvalues"][0], 50)
            ys = m["n_tail"] / n * (xs / m["xmin"]) ** (1 - m["alpha"])
            ax.loglog(xs, ys, "r-", lw=1.2)
            ax.axvline(m["xmin"], color="r", ls=":", lw=0.8)
            title += f"\nα = {m['alpha']:.2f} ± {m['alpha_stderr']:.2f} ({m['n_tail']} in tail)"
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
        # Minor log ticks overprint each other on a short spectrum and triple the drawing time.
        ax.minorticks_off()
    for i, ax in enumerate(axes.flat[: len(shown)]):
        if i + cols >= len(shown):  # the lowest panel of its column
            ax.set_xlabel("eigenvalue λ of WᵀW/N", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction ≥ λ", fontsize=8)
    _note(fig, len(shown), len(matrices))
    _save(plt, fig, path)


def plot_topk(analysis: dict[str, Any], path: Path, max_rows: int = MAX_ROWS) -> None:
    """A heat map, matrices × k: the share of each matrix's squared norm its top-k singular
    vectors hold (blank where k exceeds the matrix's smaller side)."""
    plt = _pyplot()
    ks = analysis["topk_ks"]
    shown = _largest(analysis["matrices"], max_rows)
    grid = np.array(
        [[m["topk"].get(str(k), np.nan) for k in ks] for m in shown], dtype=np.float64
    ).reshape(len(shown), len(ks))
    fig, ax = plt.subplots(figsize=(2.5 + 0.6 * len(ks), 1.5 + 0.3 * max(1, len(shown))))
    image = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            colour = "black" if v > 0.6 else "white"
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    labels = [f"{_short(m['name'])} {m['shape'][0]}×{m['shape'][1]}" for m in shown]
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.set_xlabel("k, top singular vectors")
    ax.set_title("share of ‖W‖²_F in the top k singular vectors", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    _note(fig, len(shown), len(analysis["matrices"]))
    _save(plt, fig, path)
