"""Learned second stage of the R-peak detector: every envelope peak is a candidate, described by 13 features
relative to its record (amplitude, neighbours, sharpness, width, template likeness, noise floor, R-R context), scored
by a logistic model. The scorer overrides the rule-based stage only where it is confident: a rule beat is dropped
below P = 0.1, another candidate is added above P = 0.9, then a refractory period keeps one beat per QRS.

The packaged weights (`resources/rpeak_scorer.json`) are fitted by `fit_scorer` on annotated records; the benchmark
(`benchmarks/bench_rpeaks.py --protocol loro`) refits them per fold so every score is on a held-out record.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks

from .rpeaks import REFRACTORY_S, Envelope, checked_leads, first_stage, locate_beats, to_full_rate

SCORER_PATH = Path(__file__).resolve().parent / "resources" / "rpeak_scorer.json"
CANDIDATE_S = 0.12           # envelope peaks closer than this belong to one QRS (the 80 ms integration blurs them)
CANDIDATE_FRACTION = 0.1     # of the local beat level; weaker peaks are never kept, whatever the score
TEMPLATE_S = 0.1             # half-width of the slope window compared with the record's median beat
RULE_REJECT_P = 0.1          # the scorer overrides the rules only when it is confident; fixed, not fitted, so
CANDIDATE_ADD_P = 0.9        # every fold uses the same values
LABEL_TOLERANCE_S = 0.075    # a candidate is a beat when it is placed within 75 ms of a reference beat
FEATURE_NAMES = ("log_level_ratio", "rule_beat", "log_local_max_ratio", "log_before_ratio", "log_after_ratio",
                 "sharpness", "log_width_ratio", "template_corr", "log_template_gain", "log_noise_ratio",
                 "rr_before", "rr_after", "log_level_vs_record")


@dataclass(frozen=True)
class CandidateScorer:
    """Standardisation + linear layers (tanh between them, sigmoid output) mapping candidate features to P(beat)."""
    mean: np.ndarray
    scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]

    def score(self, features: np.ndarray) -> np.ndarray:
        """(candidates, features) -> probability that each candidate is an R peak, (candidates,)."""
        h = (features - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.tanh(h)
        return 1.0 / (1.0 + np.exp(-np.clip(h[:, 0], -30, 30)))

    def to_json(self) -> dict:
        """Plain-list form written to resources/rpeak_scorer.json."""
        return {"features": list(FEATURE_NAMES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "layers": [{"w": w.tolist(), "b": b.tolist()} for w, b in self.layers]}

    @classmethod
    def from_json(cls, blob: dict, source: str = "<dict>") -> "CandidateScorer":
        """Inverse of to_json; refuses weights fitted on another feature list."""
        if blob.get("features") != list(FEATURE_NAMES):
            raise ValueError(f"{source}: R-peak scorer was fitted on features {blob.get('features')}, "
                             f"this version computes {list(FEATURE_NAMES)}")
        layers = tuple((np.asarray(l["w"], np.float32), np.asarray(l["b"], np.float32)) for l in blob["layers"])
        return cls(np.asarray(blob["mean"], np.float32), np.asarray(blob["scale"], np.float32), layers)


@lru_cache(maxsize=1)
def default_scorer() -> CandidateScorer:
    """The packaged scorer, fitted on every annotated record of the benchmark (loaded once)."""
    return CandidateScorer.from_json(json.loads(SCORER_PATH.read_text()), str(SCORER_PATH))


def candidates(env: Envelope, level: np.ndarray) -> np.ndarray:
    """Envelope peaks (decimated indices) at least CANDIDATE_S apart and above CANDIDATE_FRACTION x beat level."""
    c, _ = find_peaks(env.env, distance=max(1, int(round(CANDIDATE_S * env.fd))))
    return c[env.env[c] > CANDIDATE_FRACTION * level[c]]


def _neighbour_max(cands: np.ndarray, amp: np.ndarray, start_s: float, stop_s: float, fd: float) -> np.ndarray:
    """Largest candidate envelope within [c + start, c + stop] s of each candidate c (0 when none, self excluded).

    Candidates are >= CANDIDATE_S apart, so 1 + span / CANDIDATE_S neighbours on each side cover any window."""
    reach = int(max(abs(start_s), abs(stop_s)) / CANDIDATE_S) + 1
    out = np.zeros(len(cands))
    lo, hi = start_s * fd, stop_s * fd
    for k in range(-reach, reach + 1):
        if k == 0 or abs(k) >= len(cands):
            continue
        j = np.arange(len(cands)) + k
        ok = (j >= 0) & (j < len(cands))
        jj = np.clip(j, 0, len(cands) - 1)
        dt = cands[jj] - cands
        ok &= (dt >= lo) & (dt <= hi)
        out = np.where(ok, np.maximum(out, amp[jj]), out)
    return out


def _windows(v: np.ndarray, at: np.ndarray, half: int) -> np.ndarray:
    """(..., len(at), 2*half+1) windows of v (..., samples) centred on `at`, edge samples repeated."""
    idx = np.clip(at[:, None] + np.arange(-half, half + 1), 0, v.shape[-1] - 1)
    return v[..., idx]


def _template_likeness(env: Envelope, cands: np.ndarray, rule: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lead-weighted correlation with, and log gain over, the record's median slope beat (median over rule beats)."""
    half = max(1, int(round(TEMPLATE_S * env.fd)))
    win = _windows(env.slopes, cands, half)                               # (live leads, candidates, window)
    win = win - win.mean(axis=-1, keepdims=True)
    ref = np.isin(cands, rule)
    template = np.median(win[:, ref] if ref.sum() >= 3 else win, axis=1)   # (live leads, window)
    t_norm = np.linalg.norm(template, axis=-1)
    w_norm = np.linalg.norm(win, axis=-1)
    corr = np.einsum("cnt,ct->cn", win, template) / np.maximum(w_norm * t_norm[:, None], 1e-12)
    w = env.weights[env.weights > 0]
    w = w / w.sum()
    gain = np.log(np.maximum(w_norm, 1e-6) / np.maximum(t_norm[:, None], 1e-6))
    return w @ corr, w @ gain


def _noise_floor(v: np.ndarray, at: np.ndarray, fd: float) -> np.ndarray:
    """Median over 3 blocks of the 1 s block medians of v, at the block holding each index in `at`."""
    block = max(1, int(round(fd)))
    nb = max(1, len(v) // block)
    med = ndimage.median_filter(np.median(v[:nb * block].reshape(nb, block), axis=-1), 3, mode="nearest")
    return med[np.minimum(at // block, nb - 1)]


def _rr_context(cands: np.ndarray, rule: np.ndarray, fd: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the previous and to the next rule beat (other than the candidate), in median R-R, capped at 3."""
    if len(rule) < 2:
        full = np.full(len(cands), 3.0)
        return full, full
    rr = float(np.median(np.diff(rule)))
    i = np.searchsorted(rule, cands, side="left")
    j = np.searchsorted(rule, cands, side="right")
    before = np.where(i > 0, cands - rule[np.maximum(i - 1, 0)], 3 * rr)
    after = np.where(j < len(rule), rule[np.minimum(j, len(rule) - 1)] - cands, 3 * rr)
    return np.minimum(before / rr, 3.0), np.minimum(after / rr, 3.0)


def candidate_features(env: Envelope, level: np.ndarray, rule: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """(candidates, len(FEATURE_NAMES)) float32 features of envelope candidates, relative to their record."""
    e, fd = env.env, env.fd
    amp = np.maximum(e[cands], 1e-9)
    is_rule = np.isin(cands, rule)
    ref = is_rule if is_rule.sum() >= 3 else np.ones(len(cands), dtype=bool)
    # sharpness: +-1 sample slope energy over 40 ms against the 8-30 Hz envelope (a T wave is slower than a QRS)
    w = env.weights[env.weights > 0]
    fast = _windows(env.fast, cands, max(1, int(round(0.02 * fd))))
    sharp = 0.5 * np.log(np.maximum(np.einsum("c,cnt->n", w, fast * fast) / fast.shape[-1], 1e-18) / amp ** 2)
    half = max(1, int(round(0.15 * fd)))
    width = (_windows(e, cands, half) > amp[:, None] / 2).sum(axis=-1) / fd
    corr, gain = _template_likeness(env, cands, rule)
    rr_before, rr_after = _rr_context(cands, rule, fd)
    feats = [np.log(amp / np.maximum(level[cands], 1e-9)), is_rule.astype(np.float64),
             np.log(amp / np.maximum(_neighbour_max(cands, amp, -0.4, 0.4, fd), amp)),
             np.log(np.maximum(_neighbour_max(cands, amp, -0.45, -0.1, fd), 1e-3 * amp) / amp),
             np.log(np.maximum(_neighbour_max(cands, amp, 0.1, 0.45, fd), 1e-3 * amp) / amp),
             sharp - np.median(sharp[ref]), np.log(width / np.median(width[ref])), corr, gain,
             np.log(np.maximum(_noise_floor(e, cands, fd), 1e-9) / amp), rr_before, rr_after,
             np.log(np.maximum(level[cands], 1e-9) / max(float(np.median(level)), 1e-9))]
    return np.clip(np.stack(feats, axis=1), -10.0, 10.0).astype(np.float32)


def scored_beats(env: Envelope, level: np.ndarray, rule: np.ndarray, scorer: CandidateScorer) -> np.ndarray:
    """Decimated beat indices: rule beats the scorer does not reject plus candidates it is sure of, REFRACTORY_S
    apart, rule beats and then higher scores winning."""
    cands = candidates(env, level)
    if len(cands) == 0:
        return cands
    p = scorer.score(candidate_features(env, level, rule, cands))
    is_rule = np.isin(cands, rule)
    # a rule beat (ranked above every added candidate) goes only when the scorer is sure it is not one
    rank = np.where(is_rule, np.where(p > RULE_REJECT_P, 1.0 + p, 0.0), np.where(p > CANDIDATE_ADD_P, p, 0.0))
    track = np.zeros(len(env.env) + 2)
    track[cands + 1] = rank            # padded by one sample so a candidate on the first/last sample can be a peak
    kept, _ = find_peaks(track, height=CANDIDATE_ADD_P, distance=max(1, int(round(REFRACTORY_S * env.fd))))
    return kept - 1


def labelled_candidates(signal: np.ndarray, fs: float, reference: np.ndarray,
                        edge: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels 0/1) of one annotated record's candidates; candidates within `edge` samples of either end
    are left out (their reference is not scored)."""
    x = checked_leads(signal, fs)
    stage = None if x is None else first_stage(x, fs)
    if stage is None:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0)
    env, level, rule = stage
    cands = candidates(env, level)
    feats = candidate_features(env, level, rule, cands)
    located = locate_beats(x, env, cands, fs)
    label = np.zeros(len(cands))
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    if len(ref):
        # every candidate placed within the tolerance of a beat is that beat: the lobes of a wide ventricular QRS
        # are all correct picks, and the refractory period keeps one of them
        k = np.clip(np.searchsorted(ref, located), 1, max(len(ref) - 1, 1))
        gap = np.minimum(np.abs(ref[k - 1] - located), np.abs(ref[np.minimum(k, len(ref) - 1)] - located))
        label = (gap <= LABEL_TOLERANCE_S * fs).astype(np.float64)
    inside = (located >= edge) & (located <= x.shape[1] - edge)
    return feats[inside], label[inside]


def fit_scorer(groups: dict[str, list[tuple[np.ndarray, np.ndarray]]], c: float = 1.0) -> CandidateScorer:
    """Fit the logistic scorer on {group: [labelled_candidates(...) of each record]}; each group weighs the same in
    the loss whatever its number of beats (a 30-min Holter record must not drown 10 s clips)."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, ws = [], [], []
    for per_record in groups.values():
        n = sum(len(y) for _, y in per_record)
        for f, y in per_record:
            xs.append(f)
            ys.append(y)
            ws.append(np.full(len(y), 1.0 / max(n * len(groups), 1)))
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    if len(np.unique(y)) < 2:
        raise ValueError("fit_scorer: the records give no beat or no non-beat candidate to learn from")
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3)
    model = LogisticRegression(C=c, max_iter=3000).fit((x - mean) / scale, y, sample_weight=w * len(y) / w.sum())
    layer = (model.coef_.T.astype(np.float32), model.intercept_.astype(np.float32))
    return CandidateScorer(mean.astype(np.float32), scale.astype(np.float32), (layer,))


def detect_scored(signal: np.ndarray, fs: float, scorer: CandidateScorer | None) -> np.ndarray:
    """R-peak samples (int64, sorted, unique) of (samples,) or (channels, samples) at fs Hz with a given scorer
    (None: the rule-based stage alone)."""
    x = checked_leads(signal, fs)
    stage = None if x is None else first_stage(x, fs)
    if stage is None:
        return np.zeros(0, dtype=np.int64)
    env, level, beats = stage
    if scorer is not None:
        beats = scored_beats(env, level, beats, scorer)
    return to_full_rate(x, env, beats, fs)
