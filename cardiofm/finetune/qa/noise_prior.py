"""Noise prior of the QA model: logistic regressions of the PTB-XL noise columns on measured signal-quality features
(data.signal_quality), fitted on training-patient records only; the coefficients are plain lists saved in the
model config, so from_pretrained reproduces the score without pickles.

Two models per noise type: per lead (features of that lead, their median over the record's leads, and which lead
it is: the annotators flag static noise mostly in the limb leads and drift mostly in V1/V6), and per record (max and
median over the 12 leads, median over the limb leads).
"""
from __future__ import annotations

import numpy as np

from ...data.attributes import NOISE_TYPES
from ...data.channels import TWELVE_LEADS
from ...data.signal_quality import LEAD_FEATURES, LIMB_LEADS, lead_design, record_design

MIN_POSITIVE_RECORDS = 3   # fewer training records with the flag: no slope is fitted, the score is the base rate
L2_C = 0.3                 # inverse L2 strength on standardised inputs: ~150 training records, ~25 positive


def _fit_one(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict:
    """Standardised L2 logistic regression -> {'mean', 'scale', 'coef', 'intercept', 'positives'} (lists)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), np.maximum(x.std(0), 1e-6)
    positive_groups = len(np.unique(groups[y.astype(bool)]))
    coef = np.zeros(x.shape[1])
    rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    intercept = float(np.log(rate / (1 - rate)))
    if positive_groups >= MIN_POSITIVE_RECORDS:
        lr = LogisticRegression(C=L2_C, max_iter=2000).fit((x - mean) / scale, y)
        coef, intercept = lr.coef_[0], float(lr.intercept_[0])
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": np.asarray(coef, float).tolist(),
            "intercept": intercept, "positives": int(positive_groups)}


def fit_noise_prior(features: np.ndarray, lead_flags: np.ndarray, lead_mask: np.ndarray,
                    record_flags: np.ndarray) -> dict:
    """Training records' features (N, 12, F), lead flags / mask (N, 4, 12) bool, record flags (N, 4) bool -> the
    noise prior (JSON-ready: {'features', 'leads', 'lead': [4 models], 'record': [4 models]})."""
    n = len(features)
    if features.shape[1:] != (len(TWELVE_LEADS), len(LEAD_FEATURES)):
        raise ValueError(f"features must be (N, 12, {len(LEAD_FEATURES)}), got {features.shape}")
    x_lead, x_record = lead_design(features).reshape(n * len(TWELVE_LEADS), -1), record_design(features)
    rid = np.repeat(np.arange(n), len(TWELVE_LEADS))
    prior = {"features": list(LEAD_FEATURES), "leads": list(TWELVE_LEADS), "lead": [], "record": []}
    for k in range(len(NOISE_TYPES)):
        m = lead_mask[:, k].reshape(-1)
        prior["lead"].append(_fit_one(x_lead[m], lead_flags[:, k].reshape(-1)[m].astype(int), rid[m]))
        prior["record"].append(_fit_one(x_record, record_flags[:, k].astype(int), np.arange(n)))
    return prior


def _logit(x, model: dict):
    import torch

    mean, scale, coef = (torch.tensor(model[k], dtype=torch.float32, device=x.device) for k in
                         ("mean", "scale", "coef"))
    return ((x - mean) / scale) @ coef + model["intercept"]


def prior_logits(features, prior: dict):
    """Measured features (B, 12, F) tensor -> (lead logits (B, 4, 12), record logits (B, 4)) of the noise prior;
    the same inputs as lead_design / record_design, in torch."""
    import torch

    if list(prior["features"]) != list(LEAD_FEATURES):
        raise ValueError(f"noise prior was fitted on features {prior['features']}, this version measures "
                         f"{list(LEAD_FEATURES)}")
    x = features.float()
    b, c, _ = x.shape
    median = _median(x)
    lead_x = torch.cat([x, median[:, None].expand_as(x), torch.eye(c, device=x.device).expand(b, c, c)], dim=2)
    record_x = torch.cat([x.max(1).values, median, _median(x[:, :LIMB_LEADS])], dim=1)
    lead = torch.stack([_logit(lead_x, m) for m in prior["lead"]], dim=1)
    record = torch.stack([_logit(record_x, m) for m in prior["record"]], dim=1)
    return lead, record


def _median(x):
    """Median over dim 1 with numpy's convention (an even count averages the two middle values)."""
    s = x.sort(dim=1).values
    mid = x.shape[1] // 2
    return s[:, mid] if x.shape[1] % 2 else (s[:, mid - 1] + s[:, mid]) / 2
