"""QA evaluation: exact match of composed answers (model attributes, oracle attributes, majority per template) per
question type, attribute type and variant with bootstrap CIs; attribute heads vs database columns / measurements."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import torch

from ...data.attributes import NOISE_TYPES, NUMERIC_FEATURES
from ...data.channels import TWELVE_LEADS
from ...models.inference import evaluating
from ..metrics import bootstrap_ci
from .composer import compose, oracle_evidence
from .questions import parse_question


def majority_answers(train) -> dict[int, list[str]]:
    """template_id -> the most frequent answer set of that template in the training questions."""
    counts: dict[int, Counter] = defaultdict(Counter)
    for it in train:
        counts[it.template_id][tuple(sorted(it.answer))] += 1
    return {t: list(c.most_common(1)[0][0]) for t, c in counts.items()}


def _mean_ci(hits: np.ndarray) -> dict:
    lo, hi = bootstrap_ci(lambda h: float(np.mean(h)), [hits.astype(float)], n_boot=1000, seed=0)
    return {"em": float(np.mean(hits)), "ci95": [lo, hi]}


def exact_match_report(items, columns: dict[str, list[bool]]) -> dict:
    """Exact match (+95% bootstrap CI) of each answer source, overall and per question/attribute type and variant."""
    def summary(idx):
        row = {"n": len(idx)}
        for name, hits in columns.items():
            row[name] = _mean_ci(np.asarray(hits, bool)[idx]) if len(idx) else {"em": float("nan"), "ci95": []}
        return row
    out = {"overall": summary(np.arange(len(items)))}
    for key, attr in (("by_question_type", "question_type"), ("by_attribute_type", "attribute_type"),
                      ("by_variant", "variant"), ("by_template", "template_id")):
        out[key] = {str(v): summary(np.array([i for i, it in enumerate(items) if getattr(it, attr) == v]))
                    for v in sorted({getattr(it, attr) for it in items})}
    return out


def _model_outputs(model, samples: list[dict], collate, batch_size: int) -> list[dict]:
    """Per-sample evidence dicts + template argmax from batched forward passes (eval mode, restored after)."""
    device = next(model.parameters()).device
    rows = []
    with evaluating(model):
        for i in range(0, len(samples), batch_size):
            batch = {k: v.to(device) for k, v in collate(samples[i:i + batch_size]).items()}
            out = model(**batch)
            lead = torch.sigmoid(out.noise_lead_logits.float()).cpu().numpy()
            record = torch.sigmoid(out.noise_record_logits.float()).cpu().numpy()
            numeric = out.numeric_ms.float().cpu().numpy()
            if not (np.isfinite(lead).all() and np.isfinite(numeric).all()):
                raise ValueError("model produced NaN/inf attribute predictions")
            tmpl = out.template_logits.argmax(-1).tolist() if out.template_logits is not None else [-1] * len(lead)
            for j in range(len(lead)):
                rows.append({"noise_lead": {k: dict(zip(TWELVE_LEADS, map(float, lead[j, n])))
                                            for n, k in enumerate(NOISE_TYPES)},
                             "noise_record": dict(zip(NOISE_TYPES, map(float, record[j]))),
                             "numeric_ms": dict(zip(NUMERIC_FEATURES, map(float, numeric[j]))),
                             "template": model.config.qa_template_ids[tmpl[j]] if tmpl[j] >= 0 else -1})
    return rows


def question_evidence(model, items, records: dict, collate, vocab, batch_size: int) -> list[list[dict]]:
    """Per question, the model's evidence dict for each of its ECGs (each ECG read with the question)."""
    from .recipe import attribute_sample

    tids = list(model.config.qa_template_ids)
    pairs = [(it, e) for it in items for e in it.ecg_ids]
    outputs = _model_outputs(model, [attribute_sample(records[e], it, tids, vocab) for it, e in pairs],
                             collate, batch_size)
    grouped, k = [], 0
    for it in items:
        grouped.append(outputs[k:k + it.n_ecgs])
        k += it.n_ecgs
    return grouped


def evaluate_questions(model, split: dict, records: dict, collate, vocab, batch_size: int) -> dict:
    """Test questions answered from the model's attributes (each ECG read with the question) under the model's
    decision rules, from the oracle attributes and by the majority answer; parser and template-head accuracy."""
    items = split["test"]
    ranges, thresholds, rules = model.decision_rules()
    majority = majority_answers(split["train"])
    grouped = question_evidence(model, items, records, collate, vocab, batch_size)
    cols = {"model": [], "oracle": [], "majority": []}
    parser_ok, head_ok = [], []
    for it, evidence in zip(items, grouped):
        intent = parse_question(it.question)
        options = model.template_options(intent.template_id)
        head_ok.append(evidence[0]["template"] == it.template_id)
        oracle = [oracle_evidence(records[e].noise_lead, records[e].noise_record, records[e].numeric_ms,
                                  records[e].numeric_found) for e in it.ecg_ids]
        truth = set(it.answer)
        # the oracle's noise evidence is 0/1 (default threshold); both use the training-chosen feature rules
        cols["model"].append(set(compose(intent, evidence, ranges, options, thresholds, rules)[0]) == truth)
        cols["oracle"].append(set(compose(intent, oracle, ranges, options, None, rules)[0]) == truth)
        cols["majority"].append(set(majority.get(it.template_id, [])) == truth)
        parser_ok.append(intent.template_id == it.template_id)
    report = exact_match_report(items, cols)
    report["intent_parser_accuracy"] = float(np.mean(parser_ok))
    report["template_head_accuracy"] = float(np.mean(head_ok))
    return report


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def attribute_report(model, records: list, collate, vocab, batch_size: int, probe) -> dict:
    """Held-out records: AUROC (+CI, resampling records) of the noise heads vs the database columns (per lead and
    per record, each noise type), MAE (ms) of the numeric features vs the measured values."""
    from .recipe import attribute_sample

    tids = list(model.config.qa_template_ids)
    outs = _model_outputs(model, [attribute_sample(r, probe, tids, vocab) for r in records], collate, batch_size)
    report = {"n_records": len(records), "probe_question": probe.question, "noise": {}, "numeric_mae_ms": {}}
    rid = np.repeat(np.arange(len(records)), len(TWELVE_LEADS))
    for n, kind in enumerate(NOISE_TYPES):
        y = np.concatenate([r.noise_lead[n] for r in records]).astype(int)
        m = np.concatenate([r.noise_lead_mask[n] for r in records])
        p = np.concatenate([[o["noise_lead"][kind][lead] for lead in TWELVE_LEADS] for o in outs])
        yr = np.array([r.noise_record[n] for r in records]).astype(int)
        pr = np.array([o["noise_record"][kind] for o in outs])
        report["noise"][kind] = {
            "lead_positives": int(y[m].sum()), "lead_auroc": _auroc(y[m], p[m]),
            "lead_auroc_ci95": list(bootstrap_ci(_auroc, [y[m], p[m]], 500, 0, groups=rid[m])),
            "record_positives": int(yr.sum()), "record_auroc": _auroc(yr, pr),
            "record_auroc_ci95": list(bootstrap_ci(_auroc, [yr, pr], 500, 0))}
    for k, feature in enumerate(NUMERIC_FEATURES):
        found = np.array([r.numeric_found[k] for r in records])
        err = np.array([abs(o["numeric_ms"][feature] - r.numeric_ms[k]) for o, r in zip(outs, records)])
        report["numeric_mae_ms"][feature] = float(err[found].mean()) if found.any() else float("nan")
    return report
