"""Question understanding: template or paraphrased ECG-QA question text -> parsed intent (what is asked, about which
attribute, which lead, which comparison).

The intents cover the question families of the shared ECG-QA sample: noise verification in a lead or in the whole
ECG (templates 26, 27, 28) and numeric-feature comparisons between two ECGs (68 became normal, 69 became abnormal,
70 still abnormal). Anything else raises ValueError naming the question, so an unsupported question is never
answered by a guess.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...data.attributes import NOISE_TYPES
from ...data.channels import TWELVE_LEADS

ANY_NOISE = "any kind of noises"
COMPARISONS = ("became normal", "became abnormal", "still abnormal")
TEMPLATE_OF = {("verify", "noise", True): 26, ("verify", "noise", False): 27, ("verify", ANY_NOISE, True): 28,
               ("compare", "became normal", None): 68, ("compare", "became abnormal", None): 69,
               ("compare", "still abnormal", None): 70}

_VERIFY_START = re.compile(r"^(does|do|is|are|can|has|have|was|were)\b", re.I)
_QUERY_START = re.compile(r"^(what|which)\b", re.I)
_LEAD = re.compile(r"\blead\s+(I{1,3}|aVR|aVL|aVF|V[1-6])\b", re.I)
_ANY_NOISE_WORDS = re.compile(r"\b(nois(e|es)|interference|distortions?|artifacts?)\b", re.I)
_COMPARE = re.compile(r"\b(second|first)\s+(ecg|one)\b", re.I)
_NUMERIC = re.compile(r"\b(numeric(al)?|measurements?|values?|features?|attributes?|factors?)\b", re.I)
_STILL = re.compile(r"\b(still|remains?|remained)\b", re.I)
_TO_NORMAL = re.compile(r"\babnormal\s+to\s+normal\b", re.I)
_ABNORMAL = re.compile(r"\b(abnormal|irregular|unusual|atypical|deviat\w*|not\s+normal)\b", re.I)
_NORMAL = re.compile(r"\b(normal|typical|standard|stable)\b", re.I)


@dataclass(frozen=True)
class Intent:
    """kind 'verify' (yes/no) or 'compare' (set of numeric features); attribute a NOISE_TYPES entry, ANY_NOISE or
    'numeric_feature'; lead a TWELVE_LEADS name or None (whole ECG); comparison one of COMPARISONS or None;
    n_ecgs the number of ECGs the question needs; template_id the ECG-QA template this intent is."""

    kind: str
    attribute: str
    lead: str | None
    comparison: str | None
    n_ecgs: int
    template_id: int


def _lead(text: str) -> str | None:
    found = {m.group(1).upper() for m in _LEAD.finditer(text)}
    if len(found) > 1:
        raise ValueError(f"question names several leads {sorted(found)}: {text!r}")
    if not found:
        return None
    return {lead.upper(): lead for lead in TWELVE_LEADS}[found.pop()]


def _comparison(text: str) -> str:
    if _STILL.search(text):
        return "still abnormal"      # "still abnormal", "remain irregular", "not still normal"
    if _TO_NORMAL.search(text):
        return "became normal"
    if _ABNORMAL.search(text):
        return "became abnormal"
    if _NORMAL.search(text):
        return "became normal"       # "now within a normal range", "returned to a standard state"
    raise ValueError(f"comparison question without a recognisable change (normal/abnormal/still): {text!r}")


def parse_question(question: str) -> Intent:
    """Question text -> Intent; ValueError for an empty question or one outside the supported intents."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("empty question")
    text = " ".join(question.strip().split())
    if _COMPARE.search(text) and _NUMERIC.search(text):
        if not _QUERY_START.match(text):
            raise ValueError(f"unsupported comparison form (expected a what/which question): {text!r}")
        change = _comparison(text)
        return Intent("compare", "numeric_feature", None, change, 2, TEMPLATE_OF[("compare", change, None)])
    if not _VERIFY_START.match(text):
        raise ValueError(f"unsupported question (not a yes/no noise question or a numeric comparison): {text!r}")
    lowered = text.lower()
    named = [kind for kind in NOISE_TYPES if kind in lowered or kind.replace(" problems", " problem") in lowered]
    lead = _lead(text)
    if len(named) > 1:
        raise ValueError(f"question names several noise types {named}: {text!r}")
    if named:
        return Intent("verify", named[0], lead, None, 1, TEMPLATE_OF[("verify", "noise", lead is not None)])
    if _ANY_NOISE_WORDS.search(text):
        if lead is None:
            raise ValueError(f"unsupported question: any-noise verification needs a lead: {text!r}")
        return Intent("verify", ANY_NOISE, lead, None, 1, TEMPLATE_OF[("verify", ANY_NOISE, True)])
    raise ValueError(f"unknown intent: no noise type, noise word or numeric comparison in {text!r}")
