"""ECG question answering: ECG-QA reader on the real files, template-restricted answers, recipe end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiofm.data.readers.ecgqa import QAItem, check_answers, read_answer_vocab, read_questions, read_template_options
from cardiofm.finetune.qa.recipe import exact_match_report, majority_answers
from tests.conftest import shared_path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_reader_on_real_ecgqa_files():
    root = shared_path("ecgqa_ptbxl")
    items = read_questions(root)
    answers, options = read_answer_vocab(root), read_template_options(root)
    assert len(items) == 698 and len(answers) == 104 and answers[:3] == ["no", "not sure", "yes"]
    check_answers(items, answers)
    assert {it.variant for it in items} == {"template", "paraphrased"}
    for it in items:
        assert set(it.answer) <= set(options[it.template_id])
        assert it.n_ecgs == (2 if it.question_type.startswith("comparison") else 1)
    assert len(read_questions(root, ("paraphrased",))) == 349


def test_reader_names_file_and_reason(tmp_path):
    from cardiofm.data.record import RecordError

    (tmp_path / "template_questions.json").write_text('[{"question": "q?"}]')
    with pytest.raises(RecordError, match="template_questions.json.*lacks field"):
        read_questions(tmp_path, ("template",))


def _item(tid, answer, qtype="single-verify"):
    return QAItem(question="q", answer=answer, question_type=qtype, attribute_type="noise", template_id=tid,
                  ecg_ids=[1])


def test_exact_match_and_majority_baseline():
    train = [_item(1, ["no"]), _item(1, ["no"]), _item(1, ["yes"]), _item(2, ["a", "b"], "single-query")]
    maj = majority_answers(train)
    assert maj == {1: ["no"], 2: ["a", "b"]}
    test = [_item(1, ["no"]), _item(1, ["yes"]), _item(2, ["b", "a"], "single-query"), _item(2, ["a"], "single-query")]
    rep = exact_match_report(test, [["no"], ["no"], ["a", "b"], ["a", "b"]], maj)
    assert rep["overall"] == {"n": 4, "model_em": 0.5, "majority_em": 0.5}
    assert rep["by_question_type"]["single-query"]["model_em"] == 0.5  # order-free set equality


def test_answers_are_restricted_to_the_template_options():
    import cardiofm  # noqa: F401
    from cardiofm.models import CardioFMForQuestionAnswering, preset_config, qa_config

    answers = ["no", "not sure", "yes", "p duration", "qt interval", "rr interval"]
    head = qa_config(answers, {1: ["no", "not sure", "yes"], 68: ["p duration", "qt interval", "rr interval"]}, [1])
    torch.manual_seed(0)
    model = CardioFMForQuestionAnswering(preset_config("tiny", **head)).eval()
    b, c, t = 2, 26, 1000
    batch = {"signals": torch.randn(b, c, t) * 0.2, "channel_ids": torch.arange(13).repeat(2)[None].expand(b, -1),
             "channel_mask": torch.tensor([[True] * 12 + [False] + [True] * 12 + [False],
                                           [True] * 12 + [False] * 14]),
             "segment_ids": torch.tensor([0] * 13 + [1] * 13)[None].expand(b, -1),
             "input_ids": torch.randint(5, 100, (b, 12)), "template_index": torch.tensor([0, 1])}
    with torch.no_grad():
        out = model(**batch, labels=torch.tensor([[1.0, 0, 0, 0, 0, 0], [0, 0, 0, 1.0, 1.0, 0]]))
    assert torch.isfinite(out.loss)
    assert (out.logits[0, 3:] < -1e3).all() and (out.logits[1, :3] < -1e3).all()
    picks = model.decide(out.logits, batch["template_index"])
    assert len(picks[0]) == 1 and picks[0][0] in answers[:3]
    assert picks[1] and set(picks[1]) <= set(answers[3:])


def test_finetune_runs_and_answers_real_questions(tmp_path):
    from cardiofm.config import load_config
    from cardiofm.data.readers.ptbxl import read_ptbxl
    from cardiofm.finetune.qa.recipe import QAConfig, run_qa
    from cardiofm.models import CardioFMForQuestionAnswering
    from cardiofm.models.tokenizer import ReportTokenizer

    ptbxl = shared_path("ptbxl")
    cfg = load_config(QAConfig, None, [
        f"ecgqa={shared_path('ecgqa_ptbxl')}", f"ptbxl={ptbxl}", "variants=[template]", "train.max_steps=2",
        "train.batch_size=4", "train_folds=[1,2,3,4,5,6,7]", "test_folds=[8]", f"output_dir={tmp_path}"])
    rep = run_qa(cfg)
    test = rep["test"]
    assert rep["n_questions"]["train"] + rep["n_questions"]["test"] == 349 and test["overall"]["n"] > 20
    for qtype in ("single-verify", "comparison_irrelevant-query"):
        row = test["by_question_type"][qtype]
        assert row["n"] > 0 and 0 <= row["model_em"] <= 1 and 0 <= row["majority_em"] <= 1
    assert test["by_question_type"]["single-verify"]["majority_em"] > 0.5  # "no" dominates the noise questions
    model = CardioFMForQuestionAnswering.from_pretrained(str(tmp_path / "model"))
    model.report_tokenizer = ReportTokenizer.from_pretrained(str(tmp_path / "model"))
    a, b = read_ptbxl(str(ptbxl), 42), read_ptbxl(str(ptbxl), 168)
    one = model.answer("Does this ECG show baseline drift?", [(a.signal, a.fs, a.channels)], template_id=27)
    assert len(one) == 1 and one[0] in {"yes", "no", "not sure"}
    two = model.answer("What numeric features of the second ECG now have become normal as compared to the first ECG?",
                       [(a.signal, a.fs, a.channels), (b.signal, b.fs, b.channels)])
    assert two and set(two) <= set(model.answers)
