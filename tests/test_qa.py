"""ECG question answering: ECG-QA reader, intent parser on template and paraphrased questions, database noise
attributes, the composer, and the recipe end to end on real PTB-XL records (attribute heads, comparison answers)."""
from __future__ import annotations

import numpy as np
import pytest

from cardiofm.data.readers.ecgqa import QAItem, check_answers, read_answer_vocab, read_questions, read_template_options
from tests.conftest import shared_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_reader_on_real_ecgqa_files():
    root = shared_path("ecgqa_ptbxl")
    items = read_questions(root)
    answers, options = read_answer_vocab(root), read_template_options(root)
    assert len(items) == 698 and len(answers) == 104 and answers[:3] == ["no", "not sure", "yes"]
    check_answers(items, answers)
    for it in items:
        assert set(it.answer) <= set(options[it.template_id])
        assert it.n_ecgs == (2 if it.question_type.startswith("comparison") else 1)


def test_reader_names_file_and_reason(tmp_path):
    from cardiofm.data.record import RecordError

    (tmp_path / "template_questions.json").write_text('[{"question": "q?"}]')
    with pytest.raises(RecordError, match="template_questions.json.*lacks field"):
        read_questions(tmp_path, ("template",))


def test_intent_parser_reads_every_template_and_paraphrase():
    from cardiofm.finetune.qa.questions import parse_question

    for variant in ("template", "paraphrased"):
        items = read_questions(shared_path("ecgqa_ptbxl"), (variant,))
        for it in items:
            intent = parse_question(it.question)
            assert intent.template_id == it.template_id, it.question
            assert intent.n_ecgs == it.n_ecgs
            if it.template_id == 26:
                assert intent.attribute == it.attribute[0] and intent.lead is not None


@pytest.mark.parametrize("question, match", [
    ("", "empty question"), ("   ", "empty question"),
    ("What is the patient's favourite colour?", "unsupported question"),
    ("Does this ECG show an unusual finding?", "unknown intent"),
    ("Does this ECG show static noise in lead I and lead V2?", "several leads"),
])
def test_malformed_questions_raise(question, match):
    from cardiofm.finetune.qa.questions import parse_question

    with pytest.raises(ValueError, match=match):
        parse_question(question)


def test_noise_columns_reproduce_every_noise_answer():
    """The composer fed the database noise columns (the oracle) answers all noise questions exactly."""
    from cardiofm.data.attributes import noise_targets, parse_noise_leads
    from cardiofm.data.readers.ptbxl import load_ptbxl_database
    from cardiofm.finetune.qa.composer import compose, oracle_evidence
    from cardiofm.finetune.qa.questions import parse_question

    assert sorted(parse_noise_leads(" , I-AVR,  ").leads) == ["I", "II", "III", "aVR"]
    assert sorted(parse_noise_leads("v5-6,  ").leads) == ["V5", "V6"]
    assert not parse_noise_leads(" , leicht,  ").leads_known
    db = load_ptbxl_database(str(shared_path("ptbxl")))
    items = [it for it in read_questions(shared_path("ecgqa_ptbxl")) if it.attribute_type == "noise"]
    hits = []
    for it in items:
        lead, _, record = noise_targets(db.loc[it.ecg_ids[0]])
        evidence = oracle_evidence(lead, record, np.zeros(6), np.ones(6, bool))
        hits.append(compose(parse_question(it.question), [evidence], {}, ["no", "yes"])[0] == it.answer)
    assert len(items) == 478 and all(hits)


def test_composer_compares_numeric_features():
    from cardiofm.finetune.qa.composer import compose, oracle_evidence
    from cardiofm.finetune.qa.questions import parse_question

    ranges = {"rr interval": (600, 1000), "p duration": (0, 120), "pr interval": (120, 200),
              "qrs duration": (60, 110), "qt interval": (350, 450), "qt corrected": (350, 450)}
    zeros = (np.zeros((4, 12)), np.zeros(4))
    normal = oracle_evidence(*zeros, np.array([800, 100, 160, 90, 400, 420.0]), np.ones(6, bool))
    fast = oracle_evidence(*zeros, np.array([500, 100, 160, 90, 300, 424.0]), np.array([1, 1, 1, 0, 1, 1], bool))
    opts = ["none", "p duration", "pr interval", "qrs duration", "qt corrected", "qt interval", "rr interval"]
    became = parse_question("Which numeric values in the second ECG are newly considered abnormal when compared "
                            "to the first ECG?")
    answer, used = compose(became, [normal, fast], ranges, opts)
    assert set(answer) == {"rr interval", "qt interval", "qrs duration"}  # qrs not found: outside the range
    assert used["second_abnormal"]["rr interval"] and not used["first_abnormal"]["rr interval"]
    still = parse_question("What numeric features of the second ECG are still abnormal as compared to the first ECG?")
    assert compose(still, [normal, fast], ranges, opts)[0] == ["none"]
    with pytest.raises(ValueError, match="needs 2 ECG"):
        compose(still, [normal], ranges, opts)


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    """A short real run: the first 60 PTB-XL records (patient split), attribute heads trained for 30 steps."""
    from cardiofm.config import load_config
    from cardiofm.finetune.qa.recipe import QAConfig, run_qa

    out = tmp_path_factory.mktemp("qa")
    cfg = load_config(QAConfig, "finetune_qa", [
        f"ecgqa={shared_path('ecgqa_ptbxl')}", f"ptbxl={shared_path('ptbxl')}", "max_records=60",
        "train.max_steps=30", "train.batch_size=8", "prior_residual_scale=0.1", f"output_dir={out}"])
    return run_qa(cfg), out


def test_recipe_reports_model_oracle_and_majority(qa_run):
    report, out = qa_run
    q = report["questions"]
    assert report["split"]["test_questions"] == q["overall"]["n"] > 10
    assert q["intent_parser_accuracy"] == 1.0
    for source in ("model", "oracle", "majority"):
        lo, hi = q["overall"][source]["ci95"]
        assert lo <= q["overall"][source]["em"] <= hi
    assert q["by_attribute_type"]["noise"]["oracle"]["em"] == 1.0  # database columns answer noise questions
    mae = report["attributes"]["numeric_mae_ms"]
    assert mae["rr interval"] < 40  # measured prior + a correction of at most a few tens of ms
    assert (out / "metrics.json").is_file()


def test_saved_model_answers_a_heart_rate_comparison_on_real_ecgs(qa_run):
    from cardiofm.data.attributes import measure_intervals
    from cardiofm.data.readers.ptbxl import read_ptbxl
    from cardiofm.models import CardioFMForQuestionAnswering

    _, out = qa_run
    model = CardioFMForQuestionAnswering.from_pretrained(str(out / "model"))
    assert model.report_tokenizer is not None
    root = str(shared_path("ptbxl"))
    slow, fast = read_ptbxl(root, 1), read_ptbxl(root, 108)   # about 64 vs 120 bpm
    rates = [60000.0 / measure_intervals(r.signal, r.fs, r.channels)[0][0] for r in (slow, fast)]
    assert rates[1] - rates[0] > 20
    ecgs = [(r.signal, r.fs, r.channels) for r in (slow, fast)]
    became = "Which numerical attributes of the second ECG are now abnormal values when compared to the first ECG?"
    answer, evidence = model.answer(became, ecgs, return_evidence=True)
    assert "rr interval" in answer and evidence["second_abnormal"]["rr interval"]
    normal_again = "What numeric features of the second ECG now have become normal as compared to the first ECG?"
    assert "rr interval" in model.answer(normal_again, ecgs[::-1])
    one = model.answer("Does this ECG show baseline drift?", ecgs[:1])
    assert one in (["yes"], ["no"])
    with pytest.raises(ValueError, match="needs 2 ECG"):
        model.answer(became, ecgs[:1])
    with pytest.raises(ValueError, match="empty question"):
        model.answer("", ecgs[:1])


def test_noise_heads_on_held_out_ecgs_are_scored_against_the_database(qa_run):
    report, _ = qa_run
    noise = report["attributes"]["noise"]
    assert set(noise) == {"static noise", "burst noise", "baseline drift", "electrodes problems"}
    static = noise["static noise"]
    assert static["lead_positives"] > 0 and 0.0 <= static["lead_auroc"] <= 1.0
