"""Task heads without data files: losses, class weights, target normalisation, generic head, time stretching."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def test_asymmetric_loss_discounts_easy_negatives():
    from cardiofm.models.tasks.heads import asymmetric_loss, multilabel_loss

    logits = torch.tensor([[-4.0, 3.0]])
    targets = torch.tensor([[0.0, 1.0]])
    bce = multilabel_loss(logits, targets, "bce")
    asl = asymmetric_loss(logits, targets)
    assert asl < bce  # p = 0.018 negative is below the 0.05 clip: no loss from it
    assert multilabel_loss(logits, targets, "bce", torch.tensor([1.0, 10.0])) > bce
    with pytest.raises(ValueError, match="unknown diagnosis loss"):
        multilabel_loss(logits, targets, "focal")


def test_pos_weight_and_target_stats():
    from cardiofm.models.tasks.heads import pos_weight_from_labels, target_stats

    y = np.array([[1, 0], [0, 0], [0, 0], [1, 1]])
    assert pos_weight_from_labels(y) == [1.0, 3.0]
    mean, std = target_stats(np.array([[60.0], [80.0], [0.0]]), np.array([[True], [True], [False]]))
    assert mean == [70.0] and std == [10.0]


def test_vitals_loss_ignores_missing_targets_and_outputs_physical_units():
    from cardiofm.models import CardioFMForVitals, preset_config, vitals_config

    torch.manual_seed(0)
    model = CardioFMForVitals(preset_config("tiny", **vitals_config(["HR", "SpO2"], [70.0, 97.0], [10.0, 2.0])))
    batch = {"signals": torch.randn(2, 13, 1000) * 0.3, "channel_ids": torch.arange(13).expand(2, 13),
             "vitals": torch.tensor([[80.0, 0, 99.0, 0, 0], [60.0, 0, 0, 0, 0]]),
             "vitals_mask": torch.tensor([[True, False, True, False, False], [True, False, False, False, False]])}
    out = model(**batch)
    assert out.predictions.shape == (2, 2) and torch.isfinite(out.loss)
    assert torch.allclose(out.predictions, out.logits * torch.tensor([10.0, 2.0]) + torch.tensor([70.0, 97.0]))
    out.loss.backward()
    batch["vitals_mask"][:] = False
    assert float(model(**batch).loss) == 0.0


def test_generic_target_head_classification_and_regression():
    from cardiofm.models import CardioFMForTarget, preset_config, target_config

    x = {"signals": torch.randn(3, 13, 1000) * 0.3, "channel_ids": torch.arange(13).expand(3, 13)}
    clf = CardioFMForTarget(preset_config("tiny", **target_config("classification", ["F", "M"])))
    out = clf(**x, targets=torch.tensor([0, 1, 1]))
    assert torch.allclose(out.predictions.sum(-1), torch.ones(3)) and torch.isfinite(out.loss)
    reg = CardioFMForTarget(preset_config("tiny", **target_config("regression", ["age"], [60.0], [15.0])))
    out = reg(**x, targets=torch.tensor([[50.0], [float("nan")], [70.0]]))
    assert torch.isfinite(out.loss)  # the NaN (unknown age) is masked out
    probs = clf.predict(np.random.default_rng(0).normal(size=(1, 2000)) * 0.5, 200.0, ["II"])
    assert set(probs) == {"F", "M"} and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_stretch_record_scales_rates_not_saturation():
    from cardiofm.data.record import Record
    from cardiofm.finetune.data import stretch_record

    rec = Record(signal=np.zeros((1, 1250), np.float32), channels=["II"], fs=125.0, record_id="r",
                 vital_series={"HR": np.full(10, 80.0), "SpO2": np.full(10, 97.0)})
    fast = stretch_record(rec, 1.25)
    assert fast.fs == pytest.approx(156.25) and fast.vital_fs == pytest.approx(1.25)
    assert fast.vital_series["HR"][0] == pytest.approx(100.0) and fast.vital_series["SpO2"][0] == 97.0
    assert fast.duration_s == pytest.approx(8.0)  # 10 s played 1.25x faster


@pytest.mark.parametrize("name", ["diagnosis", "linear_probe", "vitals", "cinc2021"])
def test_shipped_finetune_configs_parse(name):
    from cardiofm.config import PACKAGED_CONFIGS, load_config
    from cardiofm.finetune.recipe import FinetuneConfig

    path = PACKAGED_CONFIGS / f"finetune_{name}.yaml"
    cfg = load_config(FinetuneConfig, path, ["train.max_steps=7"])
    assert cfg.train.max_steps == 7 and cfg.train.early_stopping_metric == "val/score"
    assert cfg.task in ("diagnosis", "vitals")


def test_finetune_config_takes_an_augmentation_section():
    from cardiofm.config import ConfigError, load_config
    from cardiofm.finetune.recipe import FinetuneConfig

    cfg = load_config(FinetuneConfig, None, ["augment.enabled=[star, gaussian_noise]", "augment.star.p=0.5"])
    assert cfg.augment.enabled == ["star", "gaussian_noise"] and cfg.augment.star.p == 0.5
    with pytest.raises(ConfigError, match="augment.enabled"):
        load_config(FinetuneConfig, None, ["augment.enabled=[warp_drive]"])


def test_task_forward_accepts_collated_keys_and_refuses_a_misspelt_argument():
    from cardiofm.models import CardioFMForDiagnosis, label_config, preset_config

    torch.manual_seed(0)
    model = CardioFMForDiagnosis(preset_config("tiny", **label_config(["NORM", "MI"])))
    x = {"signals": torch.randn(2, 13, 1000) * 0.3, "channel_ids": torch.arange(13).expand(2, 13)}
    out = model(**x, labels=torch.tensor([[1.0, 0.0], [0.0, 1.0]]), vitals=torch.zeros(2, 5),
                vitals_mask=torch.zeros(2, 5, dtype=torch.bool))  # a collated PTB-XL batch carries vitals too
    assert torch.isfinite(out.loss)
    with pytest.raises(TypeError, match="lables"):
        model(**x, lables=torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
