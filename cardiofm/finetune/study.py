"""Comparative augmentation study: the same diagnosis model (pretrained or random init) trained once per augmentation
arm under the source-aware stratified k-fold protocol on CinC 2021 (plus PTB-XL as one more source with
`ptbxl_root`), scored per record (macro/micro AUROC, rare-class AUROC, the
challenge score), reported as mean +- std over folds.

Every arm sees the same folds, the same initial weights per fold (seeded) and the same number of optimizer steps;
only the on-the-fly augmentation of the training windows differs. Decision thresholds for the challenge score are
tuned on each fold's own training records (never on its test records).
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import ConfigError, save_config
from ..data.augment import AUGMENTATIONS, AugmentConfig, build_augmentation
from ..engine.config import TrainConfig

logger = logging.getLogger(__name__)
# PTB-XL SCP statement -> the SNOMED-CT code of the same finding in CinC 2021's label space (the names in
# cinc2021.snomed_ct_map); statements without a counterpart there (NORM, the ST/T subtypes, ...) are not used.
PTBXL_SNOMED = {
    "SR": "426783006", "STACH": "427084000", "SBRAD": "426177001", "SARRH": "427393009", "AFIB": "164889003",
    "AFLT": "164890007", "PAC": "284470004", "PVC": "427172004", "1AVB": "270492004", "CRBBB": "713427006",
    "IRBBB": "713426002", "CLBBB": "733534002", "LAFB": "445118002", "IVCD": "698252002", "LVH": "164873001",
    "NDT": "164934002", "NST_": "428750005", "LNGQT": "111975006", "QWAVE": "164917005", "LPR": "164947007",
    "LQRSV": "251146004", "PACE": "10370003", **{mi: "164865005" for mi in (
        "IMI", "ASMI", "AMI", "ALMI", "ILMI", "LMI", "IPLMI", "IPMI", "PMI", "INJAS", "INJAL", "INJIN", "INJLA",
        "INJIL")}}
ARMS = ["none", "star", "equal_segment", "crop_shift", "time_stretch", "gaussian_noise", "baseline_wander",
        "amplitude_scale", "lead_mask"]


@dataclass
class StudyConfig:
    """What to compare, on which records, with which model and training budget."""

    root: str = "../shared/data/torch_ecg_sample/cinc2021"   # CinC 2021 folder (sample or full download)
    ptbxl_root: str = ""                # PTB-XL folder added as one more source (SCP codes -> SNOMED-CT); "" = none
    arms: list[str] = field(default_factory=lambda: list(ARMS))   # "none" = no augmentation
    arm_p: float = 0.5                  # probability each arm's augmentation is applied to a training window
    model: str = "tiny"                 # preset (random init) or pretrained checkpoint dir / Hub id
    n_folds: int = 5
    folds: list[int] = field(default_factory=list)     # run only these folds (empty: all)
    min_label_count: int = 5            # SNOMED codes with fewer positive records are not predicted
    rare_fraction: float = 0.1          # classes with prevalence <= this are reported as rare
    max_records: int = 0                # 0: all
    max_windows_per_record: int = 3     # long records (St Petersburg 30 min) would dominate training otherwise
    seed: int = 0
    output_dir: str = "runs/augment_study"
    augment: AugmentConfig = field(default_factory=AugmentConfig)     # per-arm parameters (enabled is ignored)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=200, batch_size=32, checkpoint_every=0, log_every=50, trackers=["none"]))

    def validate(self) -> None:
        """Raise ConfigError on unknown arms or folds."""
        bad = [a for a in self.arms if a != "none" and a not in AUGMENTATIONS]
        if bad:
            raise ConfigError(f"arms: unknown augmentation {bad[0]!r}; known: none, {', '.join(sorted(AUGMENTATIONS))}")
        if any(not 0 <= f < self.n_folds for f in self.folds):
            raise ConfigError(f"folds must lie in [0, {self.n_folds})")
        if not 0 <= self.arm_p <= 1:
            raise ConfigError(f"arm_p must be in [0, 1], got {self.arm_p}")


@dataclass
class StudyData:
    """Records' windows, labels, sources and the fold assignment shared by every arm."""

    windows: list[list[dict]]       # per record
    codes: list[list[str]]          # per record: all SNOMED codes (for the challenge score)
    label_names: list[str]
    folds: list[dict[str, np.ndarray]]
    sources: list[str]


def load_study_data(cfg: StudyConfig, pre) -> StudyData:
    """Read CinC 2021 records, window them once, choose the label set and the source-aware folds."""
    from ..data.splits import source_aware_kfold
    from .data import FinetuneDataConfig, read_records, record_windows

    records = read_records(FinetuneDataConfig(source="cinc2021", root=cfg.root, max_records=cfg.max_records))
    if cfg.ptbxl_root:
        for r in read_records(FinetuneDataConfig(source="ptbxl", root=cfg.ptbxl_root, max_records=cfg.max_records)):
            r.labels = sorted({PTBXL_SNOMED[c] for c in r.labels if c in PTBXL_SNOMED})
            r.meta["database"] = "PTB-XL"
            records.append(r)
    records = [r for r in records if r.labels]
    counts: dict[str, int] = {}
    for r in records:
        for c in set(r.labels):
            counts[c] = counts.get(c, 0) + 1
    names = sorted(c for c, n in counts.items() if n >= cfg.min_label_count)
    if not names:
        raise ConfigError(f"no SNOMED code has >= {cfg.min_label_count} records under {cfg.root}")
    windows, keep = [], []
    for i, r in enumerate(records):
        try:
            w = record_windows(r, pre, list(r.labels), [])[:cfg.max_windows_per_record]
        except Exception as err:  # RecordError and reader edge cases: logged with the record, not fatal
            logger.warning("skipped %s: %s", r.path or r.record_id, err)
            continue
        if w:
            windows.append(w)
            keep.append(i)
    records = [records[i] for i in keep]
    # the contributing database is the "source": CinC pools hospitals whose devices and label habits differ
    sources = [str(r.meta.get("database") or r.source) for r in records]
    folds = source_aware_kfold([r.labels for r in records], [r.subject_id for r in records], sources,
                               cfg.n_folds, cfg.seed)
    logger.info("%d records from %s, %d labels, folds of %s test records", len(records), sorted(set(sources)),
                len(names), [len(f["test"]) for f in folds])
    return StudyData(windows, [list(r.labels) for r in records], names, folds, sources)


def arm_augmentation(cfg: StudyConfig, arm: str):
    """The pipeline of one arm: only that augmentation, at probability arm_p (None for 'none')."""
    if arm == "none":
        return None
    section = replace(getattr(cfg.augment, arm), p=cfg.arm_p)
    return build_augmentation(replace(cfg.augment, enabled=[arm], seed=cfg.seed, **{arm: section}))


def score_fold(y_true: np.ndarray, prob: np.ndarray, codes: list[list[str]], names: list[str],
               thresholds: np.ndarray, rare: list[str]) -> dict:
    """Per-record metrics of one test fold: macro/micro AUROC, rare-class AUROC, CinC 2021 challenge score."""
    from .challenge import challenge_score, codes_to_matrix, load_challenge_weights, to_scored_classes
    from .metrics import macro_auroc, micro_auroc, per_class_auroc

    per_class = per_class_auroc(y_true, prob)
    groups, _ = load_challenge_weights()
    outputs = to_scored_classes(prob >= thresholds[None], names, groups)
    return {"macro_auroc": macro_auroc(y_true, prob), "micro_auroc": micro_auroc(y_true, prob),
            "challenge_score": float(challenge_score(codes_to_matrix(codes, groups), outputs)),
            "rare_auroc": {n: float(per_class[names.index(n)]) for n in rare}}


def run_arm_fold(cfg: StudyConfig, data: StudyData, arm: str, fold: int, pre) -> dict:
    """Train the diagnosis model on one fold's training records with one arm's augmentation; score the test fold."""
    import torch

    from ..data.collate import collate_samples
    from ..engine.trainer import Trainer, seed_everything
    from ..models import CardioFMForDiagnosis, label_config, preset_config
    from .evaluation import aggregate_by_record, predict_windows
    from .metrics import tune_thresholds

    split = data.folds[fold]
    train = [w for i in split["train"] for w in data.windows[i]]
    test = [w for i in split["test"] for w in data.windows[i]]
    seed_everything(cfg.seed * 1000 + fold)     # same initial weights for every arm of this fold
    head = {**label_config(data.label_names), "classifier_dropout": 0.1}
    model = (CardioFMForDiagnosis(preset_config(cfg.model, **head)) if "/" not in cfg.model
             and not Path(cfg.model).is_dir() else CardioFMForDiagnosis.from_encoder(cfg.model, **head))
    vocab = tuple(model.config.channel_vocab)
    collate = lambda s: collate_samples(s, label_names=data.label_names, vocab=vocab)  # noqa: E731
    run_dir = Path(cfg.output_dir) / arm / f"fold{fold}"
    train_cfg = replace(cfg.train, seed=cfg.seed * 1000 + fold, batch_size=min(cfg.train.batch_size, len(train)))
    augment = arm_augmentation(cfg, arm)
    trainer = Trainer(model, train_cfg, train, collate, None, output_dir=run_dir, transform=augment, fs=pre.fs)
    trainer.train()
    if augment is not None:
        logger.info("%s fold %d augmentation counters: %s", arm, fold, augment.stats)
    model = trainer.unwrapped_model()
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)   # 45 runs: keep the numbers, not the weights

    def per_record(windows):
        prob = predict_windows(model, windows, collate)
        y = collate_samples(windows, label_names=data.label_names)["labels"].numpy()
        ids = [w["record_id"] for w in windows]
        return aggregate_by_record(ids, prob)[1], aggregate_by_record(ids, y)[1]

    with torch.no_grad():
        p_train, y_train = per_record(train)
        p_test, y_test = per_record(test)
    prevalence = np.concatenate([y_train, y_test]).mean(0)
    rare = [n for n, v in zip(data.label_names, prevalence) if v <= cfg.rare_fraction]
    test_codes = [data.codes[i] for i in split["test"]]
    scores = score_fold(y_test, p_test, test_codes, data.label_names, tune_thresholds(y_train, p_train), rare)
    scores["augmentation_counters"] = augment.stats if augment is not None else {}
    return scores


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    return (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0) if len(v) else (float("nan"), float("nan"))


def summarise(results: dict[str, list[dict]]) -> dict:
    """Per arm: mean and std over folds of each metric, rare classes averaged per class over folds, and the
    fold-paired comparison with the 'none' arm."""
    out = {}
    for arm, folds in results.items():
        row = {k: _mean_std([f[k] for f in folds]) for k in ("macro_auroc", "micro_auroc", "challenge_score")}
        rare_names = sorted({n for f in folds for n in f["rare_auroc"]})
        row["rare_auroc"] = {n: _mean_std([f["rare_auroc"].get(n) for f in folds]) for n in rare_names}
        row["rare_macro_auroc"] = _mean_std([np.nanmean(list(f["rare_auroc"].values()))
                                             if f["rare_auroc"] and np.isfinite(list(f["rare_auroc"].values())).any()
                                             else None for f in folds])
        row["folds"] = len(folds)
        if arm != "none" and "none" in results:
            row["paired_vs_none"] = paired_vs_reference(results["none"], folds)
        out[arm] = row
    return out


def paired_vs_reference(reference: list[dict], arm: list[dict], key: str = "macro_auroc") -> dict:
    """Fold-paired comparison of an arm with the reference arm: mean difference, folds won, paired t-test p and
    exact sign-flip (permutation) p over the folds both ran."""
    from itertools import product

    from scipy import stats

    ref = {f["fold"]: f[key] for f in reference}
    diffs = np.array([f[key] - ref[f["fold"]] for f in arm if f["fold"] in ref])
    if len(diffs) < 2:
        return {"mean_diff": float(diffs.mean()) if len(diffs) else float("nan"), "n": int(len(diffs))}
    flips = np.array([np.mean(diffs * np.array(signs)) for signs in product((1, -1), repeat=len(diffs))])
    return {"mean_diff": float(diffs.mean()), "n": int(len(diffs)), "wins": int((diffs > 0).sum()),
            "t_test_p": float(stats.ttest_rel(diffs + 0.0, np.zeros_like(diffs)).pvalue),
            "sign_flip_p": float(np.mean(np.abs(flips) >= abs(diffs.mean()) - 1e-12))}


def format_summary(summary: dict, label_names: dict[str, str] | None = None) -> str:
    """Markdown table: one row per arm, mean +- std over folds."""
    fmt = lambda ms: "n/a" if not np.isfinite(ms[0]) else f"{ms[0]:.3f} +- {ms[1]:.3f}"  # noqa: E731
    lines = ["| arm | folds | macro AUROC | vs none: diff, folds won, p (paired t / sign-flip) | micro AUROC | "
             "rare-class AUROC | challenge score |", "|---|---|---|---|---|---|---|"]
    for arm, row in summary.items():
        pair = row.get("paired_vs_none")
        vs = (f"{pair['mean_diff']:+.3f}, {pair.get('wins', 0)}/{pair['n']}, "
              f"{pair.get('t_test_p', float('nan')):.2f} / {pair.get('sign_flip_p', float('nan')):.2f}") if pair else "-"
        lines.append(f"| {arm} | {row['folds']} | {fmt(row['macro_auroc'])} | {vs} | {fmt(row['micro_auroc'])} | "
                     f"{fmt(row['rare_macro_auroc'])} | {fmt(row['challenge_score'])} |")
    rare = sorted({n for row in summary.values() for n in row["rare_auroc"]})
    if rare:
        names = label_names or {}
        lines += ["", "Rare classes (AUROC, mean +- std over folds where the class has both outcomes):", "",
                  "| arm | " + " | ".join(f"{names.get(n, n)} ({n})" for n in rare) + " |",
                  "|---|" + "---|" * len(rare)]
        for arm, row in summary.items():
            lines.append(f"| {arm} | " + " | ".join(fmt(row["rare_auroc"].get(n, (np.nan, np.nan))) for n in rare)
                         + " |")
    return "\n".join(lines)


def run_study(cfg: StudyConfig) -> dict:
    """Every arm x fold; writes results.json (per fold), summary.json and summary.md to output_dir."""
    from tqdm import tqdm

    from ..data.readers.cinc2021 import snomed_ct_map
    from ..models import preset_config

    cfg.validate()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "study_config.yaml")
    pre = preset_config(cfg.model).preprocess_config if cfg.model in _presets() else _checkpoint_preprocess(cfg.model)
    data = load_study_data(cfg, pre)
    folds = cfg.folds or list(range(cfg.n_folds))
    results: dict[str, list[dict]] = {arm: [] for arm in cfg.arms}
    if (out / "results.json").is_file():   # resume: arm x fold pairs already scored are kept, not rerun
        saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
        results.update({arm: saved[arm] for arm in cfg.arms if arm in saved})
    todo = [(a, f) for a in cfg.arms for f in folds if f not in {r["fold"] for r in results[a]}]
    for arm, fold in tqdm(todo, desc="augment-study"):
        results[arm].append({"fold": fold, **run_arm_fold(cfg, data, arm, fold, pre)})
        (out / "results.json").write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    summary = summarise(results)
    names = {c: v[0] for c, v in snomed_ct_map().items()}
    table = format_summary(summary, names)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
    (out / "summary.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    logger.info("augmentation study written to %s", out)
    return summary


def _presets() -> list[str]:
    from ..models import list_presets

    return list_presets()


def _checkpoint_preprocess(path: str):
    from ..models import CardioFMConfig

    return CardioFMConfig.from_pretrained(path).preprocess_config
