"""Classical lead-reconstruction references: lagged linear regression and the exact Einthoven/Goldberger limb leads."""
from __future__ import annotations

import numpy as np

from ...data.channels import LIMB_LEADS

# Each limb lead as a combination of (I, II): Einthoven III = II - I; Goldberger aVR = -(I + II)/2,
# aVL = I - II/2, aVF = II - I/2. Two limb leads therefore fix all six.
LIMB_BASIS: dict[str, tuple[float, float]] = {
    "I": (1.0, 0.0), "II": (0.0, 1.0), "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5), "aVL": (1.0, -0.5), "aVF": (-0.5, 1.0),
}


def limb_identity_residuals(leads: np.ndarray, names: list[str]) -> dict[str, float]:
    """RMS (mV) of III-(II-I), aVR+(I+II)/2, aVL-(I-II/2), aVF-(II-I/2) on (..., leads, samples) arrays."""
    idx = {n: names.index(n) for n in LIMB_LEADS}
    one, two = leads[..., idx["I"], :], leads[..., idx["II"], :]
    out = {}
    for name in ("III", "aVR", "aVL", "aVF"):
        a, b = LIMB_BASIS[name]
        out[name] = float(np.sqrt(np.mean((leads[..., idx[name], :] - (a * one + b * two)) ** 2)))
    return out


def limb_leads_from_two(x: np.ndarray, names: list[str]) -> np.ndarray | None:
    """(I, II) in mV, shape (..., 2, samples), solved exactly from any two independent limb leads, or None."""
    known = [n for n in names if n in LIMB_BASIS]
    if len(known) < 2:
        return None
    basis = np.array([LIMB_BASIS[n] for n in known])  # (k, 2)
    if np.linalg.matrix_rank(basis) < 2:
        return None
    values = np.stack([x[..., names.index(n), :] for n in known], axis=-2)  # (..., k, T)
    pinv = np.linalg.pinv(basis)  # (2, k): exact when the leads obey the identities
    return np.einsum("ck,...kt->...ct", pinv, values)


def lagged_features(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(N, C, T) -> (N, T, C*(2*max_lag+1) + 1) design rows: each input lead shifted by -max_lag..max_lag, + bias."""
    n, c, t = x.shape
    feats = np.zeros((n, t, c * (2 * max_lag + 1) + 1), dtype=np.float64)
    k = 0
    for ch in range(c):
        for lag in range(-max_lag, max_lag + 1):
            # feature at time t is x[t - lag]; zero outside the window (both edges)
            if lag >= 0:
                feats[:, lag:, k] = x[:, ch, :t - lag] if lag else x[:, ch, :]
            else:
                feats[:, :lag, k] = x[:, ch, -lag:]
            k += 1
    feats[..., -1] = 1.0
    return feats


class LaggedLinearBaseline:
    """Per-target-lead ridge regression on the input leads with +-max_lag_s lags, fitted on a training split."""

    def __init__(self, inputs: list[str], targets: list[str], fs: float, max_lag_s: float = 0.05,
                 ridge: float = 1e-3):
        self.inputs, self.targets = list(inputs), list(targets)
        self.max_lag = int(round(max_lag_s * fs))  # +-50 ms = +-5 samples at 100 Hz
        self.ridge = ridge
        self.weights: np.ndarray | None = None  # (features, targets)

    def fit(self, x: np.ndarray, y: np.ndarray, batch: int = 64) -> "LaggedLinearBaseline":
        """Fit on x (N, len(inputs), T) and y (N, len(targets), T), both mV (PPG in z units)."""
        if x.shape[0] == 0:
            raise ValueError("LaggedLinearBaseline.fit: empty training split")
        d = x.shape[1] * (2 * self.max_lag + 1) + 1
        xtx, xty = np.zeros((d, d)), np.zeros((d, y.shape[1]))
        for a in range(0, len(x), batch):  # accumulate normal equations: memory stays O(batch)
            f = lagged_features(x[a:a + batch], self.max_lag).reshape(-1, d)
            xtx += f.T @ f
            xty += f.T @ np.transpose(y[a:a + batch], (0, 2, 1)).reshape(-1, y.shape[1])
        scale = np.trace(xtx) / d
        self.weights = np.linalg.solve(xtx + self.ridge * scale * np.eye(d), xty)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x (N, len(inputs), T) -> (N, len(targets), T) float32."""
        if self.weights is None:
            raise RuntimeError("LaggedLinearBaseline.predict called before fit")
        f = lagged_features(x, self.max_lag)
        return np.transpose(f @ self.weights, (0, 2, 1)).astype(np.float32)


def fit_predict_baseline(train: np.ndarray, test: np.ndarray, names: list[str], inputs: list[str],
                         targets: list[str], fs: float, max_lag_s: float = 0.05) -> np.ndarray:
    """Fit the lagged baseline on train (N, C, T) and predict test; input leads pass through unchanged."""
    ii = [names.index(n) for n in inputs]
    ti = [names.index(n) for n in targets]
    model = LaggedLinearBaseline(inputs, targets, fs, max_lag_s).fit(train[:, ii], train[:, ti])
    pred = model.predict(test[:, ii])
    for j, name in enumerate(targets):
        if name in inputs:
            pred[:, j] = test[:, names.index(name)]
    return pred
