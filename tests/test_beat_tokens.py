"""Median-beat tokens on real PTB-XL records: alignment on the R peak, exactness on a periodic signal, absence
without ECG, and the encoder / pretraining step with beat tokens switched on."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiofm.data.collate import collate_samples
from cardiofm.data.preprocess import PreprocessConfig, preprocess_record
from cardiofm.data.readers.ptbxl import ptbxl_ids, read_ptbxl
from cardiofm.models import CardioFMForPretraining, CardioFMModel, preset_config
from cardiofm.data.beats import BEAT_KEYS, median_beats

from conftest import shared_path

FS, PATCH, BEATS = 100.0, 25, 3


@pytest.fixture(scope="module")
def ptbxl_samples():
    root = str(shared_path("ptbxl"))
    pre = PreprocessConfig(fs=FS)
    samples = []
    for i in ptbxl_ids(root)[:6]:
        samples += preprocess_record(read_ptbxl(root, i), pre)
    return samples


def _arrays(samples):
    x = np.stack([s["signal"] for s in samples]).astype(np.float32)
    ecg = np.stack([[m and c != "PPG" for c, m in zip(s["channels"], s["channel_mask"])] for s in samples])
    return x, ecg


def test_median_beat_is_aligned_on_the_r_peak(ptbxl_samples):
    x, ecg = _arrays(ptbxl_samples)
    beats, ok, start = median_beats(x, ecg, FS, PATCH, BEATS * PATCH)
    assert beats.shape == (len(x), x.shape[1], BEATS * PATCH) and ok.all()
    assert ((start >= 0) & (start <= x.shape[-1] / FS)).all()
    # the largest QRS deflection over the leads sits at the R peak: one patch (0.25 s) into the template
    energy = np.abs(beats[:, :12]).sum(1)
    assert np.all(np.abs(energy.argmax(1) - PATCH) <= 4), energy.argmax(1)


def test_median_beat_of_a_periodic_signal_is_its_beat(ptbxl_samples):
    x, ecg = _arrays(ptbxl_samples[:1])
    template, ok, _ = median_beats(x, ecg, FS, PATCH, BEATS * PATCH)
    assert ok[0]
    period = 80  # 75 bpm: tile the real median beat with a 50 ms flat gap -> every beat identical
    beat = np.concatenate([template[0], np.repeat(template[0][:, -1:], period - BEATS * PATCH, 1)], 1)
    tiled = np.tile(beat, (1, 1000 // period + 1))[None, :, :1000]
    again, ok2, _ = median_beats(tiled.astype(np.float32), ecg, FS, PATCH, BEATS * PATCH)
    assert ok2[0]
    shift = int(np.argmax(np.abs(again[0, :12]).sum(0))) - int(np.argmax(np.abs(template[0, :12]).sum(0)))
    assert shift == 0
    np.testing.assert_allclose(again[0], template[0], atol=1e-6)


def test_no_ecg_no_beat_tokens(ptbxl_samples):
    x, ecg = _arrays(ptbxl_samples[:2])
    beats, ok, _ = median_beats(x, np.zeros_like(ecg), FS, PATCH, BEATS * PATCH)
    assert not ok.any() and not beats.any()
    flat = np.zeros_like(x)   # ECG leads present but flat: no beats found, none invented
    _, ok_flat, _ = median_beats(flat, ecg, FS, PATCH, BEATS * PATCH)
    assert not ok_flat.any()


def _beat_config():
    return preset_config("tiny", beat_tokens=BEATS, num_segments=3)


def test_encoder_with_beat_tokens(ptbxl_samples):
    torch.manual_seed(0)
    model = CardioFMModel(_beat_config()).eval()
    batch = collate_samples(ptbxl_samples[:4])
    with torch.no_grad():
        out = model(**batch)
    c, p = batch["signals"].shape[1], batch["signals"].shape[2] // PATCH
    assert out.signal_hidden_state.shape == (4, c, p, 64)
    assert out.beat_hidden_state.shape == (4, c, BEATS, 64)
    assert out.last_hidden_state.shape == (4, c * p, 64)
    assert torch.isfinite(out.pooled_output).all()
    # PPG absent in PTB-XL: its beat tokens are zero like its raw tokens
    missing = ~batch["channel_mask"][0]
    assert missing.any() and out.beat_hidden_state[0, missing].abs().sum() == 0
    # lead I alone still finds its beats; the (flat) PPG alone finds none and pools its raw tokens only
    lead_i, ppg = torch.zeros_like(batch["channel_mask"]), torch.zeros_like(batch["channel_mask"])
    lead_i[:, 0] = True
    ppg[:, ptbxl_samples[0]["channels"].index("PPG")] = True
    with torch.no_grad():
        single = model(**{**batch, "channel_mask": lead_i})
        pulse = model(**{**batch, "channel_mask": ppg})
    assert (single.beat_hidden_state[:, 0].abs().sum((1, 2)) > 0).all()
    assert pulse.beat_hidden_state.abs().sum() == 0
    raw_mean = pulse.signal_hidden_state.sum((1, 2)) / (pulse.signal_hidden_state.abs().sum(-1) > 0).sum((1, 2))[:, None]
    torch.testing.assert_close(pulse.pooled_output, raw_mean)


def test_pretraining_step_with_beat_tokens(ptbxl_samples):
    torch.manual_seed(0)
    model = CardioFMForPretraining(_beat_config())
    batch = collate_samples(ptbxl_samples[:4])
    out = model(**batch, generator=torch.Generator().manual_seed(0))
    p = batch["signals"].shape[2] // PATCH
    assert torch.isfinite(out.loss) and out.predictions.shape[2] == p and out.targets.shape[2] == p
    out.loss.backward()
    assert model.cardiofm.signal_embed.position.segment_embed.weight.grad[2].abs().sum() > 0  # beat segment learns


def test_beat_head_reads_each_lead_and_phase(ptbxl_samples):
    from cardiofm.models import CardioFMForDiagnosis, label_config

    torch.manual_seed(0)
    config = _beat_config()
    config.head_pooling = "beat"
    for key, value in label_config(["NORM", "MI"]).items():
        setattr(config, key, value)
    model = CardioFMForDiagnosis(config)
    batch = collate_samples(ptbxl_samples[:4], label_names=["NORM", "MI"])
    out = model(**batch)
    assert out.logits.shape == (4, 2) and torch.isfinite(out.loss)
    out.loss.backward()
    # one weight block per (lead, beat phase) slot after the pooled block: present leads get gradient, PPG none
    grad = model.head.proj.weight.grad[:, 64:].reshape(2, 13, BEATS, 64)
    assert (grad[:, :12].abs().sum((0, 2, 3)) > 0).all() and grad[:, 12].abs().sum() == 0
    with pytest.raises(ValueError, match="beat_tokens"):
        from cardiofm.models.tasks.heads import build_head
        build_head(preset_config("tiny", head_pooling="beat"), 2)


def test_recipe_picks_the_beat_head_for_a_beat_checkpoint(tmp_path):
    from cardiofm.finetune.recipe import FinetuneConfig, encoder_overrides

    CardioFMForPretraining(_beat_config()).save_pretrained(tmp_path)
    assert encoder_overrides(FinetuneConfig(model=str(tmp_path))) == {"beat_tokens": BEATS, "head_pooling": "beat"}
    assert encoder_overrides(FinetuneConfig(model=str(tmp_path), beat_tokens=0)) == {"beat_tokens": 0,
                                                                                     "head_pooling": "mean"}
    assert encoder_overrides(FinetuneConfig(model="tiny")) == {"beat_tokens": 0, "head_pooling": "mean"}
    assert encoder_overrides(FinetuneConfig(model="tiny", beat_tokens=2, head_pooling="channel")) == {
        "beat_tokens": 2, "head_pooling": "channel"}


def test_beats_precomputed_in_collate_match_the_forward(ptbxl_samples):
    torch.manual_seed(0)
    model = CardioFMModel(_beat_config()).eval()
    batch = collate_samples(ptbxl_samples[:4], beat_window=model.config.beat_window)
    assert set(BEAT_KEYS) <= set(batch) and batch["beat_signals"].shape == (4, 13, BEATS * PATCH)
    plain = {k: v for k, v in batch.items() if k not in BEAT_KEYS}
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).pooled_output, model(**plain).pooled_output)
        shifted = dict(batch, beat_start_s=batch["beat_start_s"] + 1.0)  # the precomputed values are what is used
        assert not torch.allclose(model(**shifted).pooled_output, model(**plain).pooled_output)


def test_qa_builds_with_beat_tokens():
    """The QA model encodes each ECG on its own (segment 0), so median-beat tokens keep their own segment."""
    from cardiofm.models.tasks.qa import CardioFMForQuestionAnswering, qa_config

    head = qa_config(["no", "yes"], {26: ["no", "yes"]}, [800.0] * 6, [100.0] * 6,
                     {f: (0.0, 1e4) for f in ("rr interval", "p duration", "pr interval", "qrs duration",
                                              "qt interval", "qt corrected")})
    model = CardioFMForQuestionAnswering(preset_config("tiny", beat_tokens=BEATS, num_segments=3, **head))
    assert model.config.beat_segment == 2 and model.config.qa_template_ids == [26]
