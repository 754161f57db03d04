"""Model tests: presets, channel subsets, gradients, masking invariants, equivariance, round trips, task-key checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import cardiofm  # noqa: F401  (torchvision guard first)
from cardiofm.data.channels import CHANNEL_VOCAB
from cardiofm.data.collate import collate_samples
from cardiofm.data.preprocess import PreprocessConfig
from cardiofm.models import CardioFMForPretraining, CardioFMModel, create_model, preset_config
from cardiofm.models.masking import mask_text, plan_masking

LAYOUT = PreprocessConfig().channels  # 12 leads + PPG, 100 Hz, 10 s
TEXT_PARAMS = ("cardiofm.text_embed.", "text_head.", "contrastive.")


def make_samples(present: list[str], n: int = 3, text: str = "", seed: int = 0, t: int = 1000) -> list[dict]:
    """Sample dicts in the pipeline format with smooth random waveforms on the `present` channels."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sig = np.cumsum(rng.normal(size=(len(LAYOUT), t)), axis=1).astype(np.float32)
        sig -= sig.mean(1, keepdims=True)
        sig /= sig.std(1, keepdims=True)
        mask = np.array([c in present for c in LAYOUT])
        out.append({"signal": sig * mask[:, None], "channel_mask": mask, "channels": list(LAYOUT),
                    "text": text if i % 3 != 2 else "", "labels": []})
    return out


class FakeTokenizer:
    """Deterministic stand-in tokenizer (ids >= 5), so model tests do not depend on sentencepiece training."""

    def encode_batch(self, texts, max_length):
        rows = [[2] + [5 + (hash(w) % 200) for w in s.split()][: max_length - 2] + [3] if s else [] for s in texts]
        width = max(1, max(map(len, rows)))
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != 0


SUBSETS = {
    "12-lead": LAYOUT[:12],
    "lead-I": ["I"],
    "II+V1+V5": ["II", "V1", "V5"],
    "PPG-only": ["PPG"],
    "ECG+PPG+text": LAYOUT,
}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("tiny", contrastive_loss_weight=0.1)


@pytest.mark.parametrize("subset", list(SUBSETS))
def test_tiny_subset_forward_backward(tiny, subset):
    with_text = subset.endswith("text")
    batch = collate_samples(make_samples(SUBSETS[subset], text="sinusrhythmus normales ekg" if with_text else ""),
                            FakeTokenizer() if with_text else None, max_text_len=16)
    tiny.zero_grad()
    out = tiny(**batch, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss) and set(out.losses) == ({"signal", "text", "contrastive"} if with_text else {"signal"})
    out.loss.backward()
    for name, p in tiny.named_parameters():
        if with_text or not name.startswith(TEXT_PARAMS):
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    # reconstructions only where the loss is taken; missing channels never visible, never in the loss
    missing = ~batch["channel_mask"]
    assert not out.loss_mask[missing].any() and not out.visible_mask[missing].any()
    assert (out.predictions[~out.loss_mask] == 0).all() and out.predictions.shape == out.targets.shape
    feats = tiny.cardiofm(**batch)
    b, c, p, h = feats.signal_hidden_state.shape
    assert (c, p, h) == (13, 40, 64) and torch.isfinite(feats.last_hidden_state).all()
    assert (feats.signal_hidden_state[missing] == 0).all()
    assert torch.equal(feats.token_mask[:, : c * p].view(b, c, p).any(-1), batch["channel_mask"])


def test_preset_parameter_counts():
    counts = {}
    for name in ("tiny", "small", "base", "large"):
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in CardioFMForPretraining(preset_config(name)).parameters())
    assert counts["tiny"] < 1e6 and 15e6 < counts["small"] < 40e6
    assert 90e6 < counts["base"] < 115e6, counts
    assert 280e6 < counts["large"] < 330e6, counts


@pytest.mark.parametrize("name", ["small", "base"])
def test_big_preset_forward_backward_few_tokens(name):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(1, 3, 100)  # 3 channels x 4 patches = 12 tokens: cheap even for the base size
    out = model(x, torch.tensor([[0, 6, 12]]), generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    enc = model.cardiofm.encoder.layers
    assert enc[0].attn.qkv.weight.grad is not None and torch.isfinite(enc[-1].mlp.fc2.weight.grad).all()


def test_large_preset_shapes_on_meta():
    # the full forward compacts present tokens (a data-dependent size), so the meta check runs its two stages
    with torch.device("meta"):
        model = create_model("large")
        tokens, patches, present, times = model.cardiofm.embed_signals(torch.randn(2, 13, 1000), torch.arange(13).expand(2, -1),
                                                                torch.ones(2, 13, dtype=torch.bool))
        hidden = model.cardiofm.encode(tokens, present, signal_times=times)
    assert hidden.shape == (2, 13 * 40, 1024) and patches.shape == (2, 13, 40, 25)


def test_masking_invariants():
    gen = torch.Generator().manual_seed(3)
    cm = torch.rand(64, 13, generator=gen) < 0.6
    cm[:, 0] = True
    plan = plan_masking(cm, 40, 0.75, 0.5, torch.Generator().manual_seed(7))
    present = cm.repeat_interleave(40, dim=1)
    n_present = present.sum(1)
    # exact ratio per sample, restore indices invert the shuffle
    assert torch.equal(plan.num_visible, torch.floor(n_present * 0.25).long().clamp_min(1))
    assert torch.equal(plan.masked.sum(1), n_present - plan.num_visible)
    assert torch.equal(torch.gather(plan.ids_shuffle, 1, plan.ids_restore), torch.arange(520).expand(64, -1))
    visible = plan.ids_restore < plan.num_visible[:, None]
    assert not (visible & ~present).any() and not (visible & plan.masked).any()
    dropped_tok = plan.dropped_channels.repeat_interleave(40, dim=1)
    assert not (visible & dropped_tok).any() and plan.dropped_channels.any(1).float().mean() > 0.2
    assert (plan.dropped_channels.sum(1) <= torch.floor(0.75 * cm.sum(1))).all()
    again = plan_masking(cm, 40, 0.75, 0.5, torch.Generator().manual_seed(7))
    other = plan_masking(cm, 40, 0.75, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(again.ids_shuffle, plan.ids_shuffle) and not torch.equal(other.ids_shuffle, plan.ids_shuffle)
    ids = torch.randint(5, 100, (8, 20))
    tm = torch.arange(20)[None] < torch.tensor([20, 15, 10, 5, 3, 2, 1, 0])[:, None]
    masked_ids, target = mask_text(ids, tm, 0.15, 4, (0, 2, 3), torch.Generator().manual_seed(0))
    assert torch.equal(target.sum(1), torch.tensor([3, 3, 2, 1, 1, 1, 1, 0])) and (masked_ids[target] == 4).all()


def test_channel_embedding_same_in_any_subset(tiny):
    full = collate_samples(make_samples(LAYOUT, n=1))
    sub = collate_samples(make_samples(["II"], n=1))
    sub["signals"][0, 1] = full["signals"][0, 1]
    tok_full, *_ = tiny.cardiofm.embed_signals(full["signals"], full["channel_ids"], full["channel_mask"])
    tok_sub, *_ = tiny.cardiofm.embed_signals(sub["signals"], sub["channel_ids"], sub["channel_mask"])
    assert torch.equal(tok_full[0, 40:80], tok_sub[0, 40:80])  # lead II tokens: index 1 x 40 patches
    # lead II alone placed first in a 1-channel input embeds identically as well (by name, not position)
    tok_one, *_ = tiny.cardiofm.embed_signals(full["signals"][:, 1:2], full["channel_ids"][:, 1:2])
    assert torch.equal(tok_one[0], tok_full[0, 40:80])


def test_permuting_channels_permutes_outputs(tiny):
    tiny.eval()
    batch = collate_samples(make_samples(["I", "II", "V1", "V5", "PPG"], n=2))
    perm = torch.randperm(13, generator=torch.Generator().manual_seed(0))
    keys = ("signals", "channel_ids", "channel_mask", "time_offsets")
    permuted = {k: batch[k][:, perm] for k in keys}
    with torch.no_grad():
        a = tiny.cardiofm(**{k: batch[k] for k in keys}).signal_hidden_state
        b = tiny.cardiofm(**permuted).signal_hidden_state
        # garbage in missing channels must not leak into the present ones
        noisy = dict(batch, signals=batch["signals"] + 100 * (~batch["channel_mask"])[..., None].float())
        c = tiny.cardiofm(**{k: noisy[k] for k in keys}).signal_hidden_state
    tiny.train()
    assert torch.allclose(a[:, perm], b, atol=1e-5)
    assert torch.allclose(a, c, atol=1e-5)


def test_text_does_not_change_signal_features_but_is_conditioned(tiny):
    tiny.eval()
    batch = collate_samples(make_samples(LAYOUT, n=2, text="sinus rhythm normal ecg"), FakeTokenizer(), 16)
    with torch.no_grad():
        with_text = tiny.cardiofm(**batch)
        without = tiny.cardiofm(**{k: v for k, v in batch.items() if k not in ("input_ids", "text_mask")})
        other_sig = tiny.cardiofm(**dict(batch, signals=batch["signals"].flip(-1)))
    tiny.train()
    assert torch.allclose(with_text.signal_hidden_state, without.signal_hidden_state, atol=1e-5)
    assert not torch.allclose(with_text.text_hidden_state, other_sig.text_hidden_state, atol=1e-3)


def test_time_offsets_and_segments_are_used(tiny):
    tiny.eval()
    batch = collate_samples(make_samples(["I", "II"], n=1))
    keys = ("signals", "channel_ids", "channel_mask")
    with torch.no_grad():
        base = tiny.cardiofm(**{k: batch[k] for k in keys}).pooled_output
        shifted = tiny.cardiofm(**{k: batch[k] for k in keys}, time_offsets=torch.full((1, 13), 2.5)).pooled_output
        # two ECGs side by side for question answering: channels concatenated along C, segment ids 0 / 1
        pair = {k: torch.cat([batch[k], batch[k]], dim=1) for k in keys}
        seg = torch.cat([torch.zeros(1, 13), torch.ones(1, 13)], dim=1).long()
        out = tiny.cardiofm(**pair, segment_ids=seg)
    tiny.train()
    assert not torch.allclose(base, shifted, atol=1e-4)
    assert out.signal_hidden_state.shape[1] == 26
    assert not torch.allclose(out.signal_hidden_state[:, :13], out.signal_hidden_state[:, 13:], atol=1e-4)


def test_decoder_api_reconstructs_requested_channels(tiny):
    batch = collate_samples(make_samples(["I"], n=2))
    target = torch.tensor([[0, 1, 6], [12, 1, 0]])
    with torch.no_grad():
        rec = tiny.reconstruct(batch["signals"], batch["channel_ids"], target, batch["channel_mask"])
        ctx = tiny.encode_context(batch["signals"], batch["channel_ids"], batch["channel_mask"])
        patches = tiny.decode(ctx, torch.tensor([[1, 1], [6, 12]]), torch.tensor([[0.0, 0.25], [5.0, 9.75]]))
    assert rec.shape == (2, 3, 1000) and torch.isfinite(rec).all()
    assert patches.shape == (2, 2, 25) and ctx.hidden.shape == (2, 40, 64)


def test_gradient_checkpointing_and_bf16(tiny):
    batch = collate_samples(make_samples(LAYOUT, n=2))
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    ref = tiny(**batch, generator=gen()).loss
    tiny.activation_checkpointing_enable()
    assert tiny.cardiofm.encoder.gradient_checkpointing and tiny.decoder.gradient_checkpointing
    try:
        ckpt = tiny(**batch, generator=gen()).loss
        ckpt.backward()
    finally:
        tiny.activation_checkpointing_disable()
    assert torch.allclose(ref, ckpt, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny(**batch, generator=gen())
    assert torch.isfinite(out.loss) and abs(out.loss.item() - ref.item()) < 0.1 * ref.item()


def test_save_load_roundtrip_identical(tiny, tmp_path):
    tiny.eval()
    batch = collate_samples(make_samples(["II", "V1", "PPG"], n=2, text="ein test"), FakeTokenizer(), 16)
    tiny.save_pretrained(tmp_path)
    loaded = create_model(str(tmp_path)).eval()
    base = CardioFMModel.from_pretrained_checked(str(tmp_path)).eval()
    with torch.no_grad():
        a = tiny(**batch, generator=torch.Generator().manual_seed(0))
        b = loaded(**batch, generator=torch.Generator().manual_seed(0))
        c = base(**batch).last_hidden_state
        d = tiny.cardiofm(**batch).last_hidden_state
    tiny.train()
    assert torch.equal(a.loss, b.loss) and torch.equal(a.predictions, b.predictions) and torch.equal(c, d)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    assert loaded.config.preprocess == PreprocessConfig().to_dict() and loaded.config.channel_vocab == list(CHANNEL_VOCAB)
    card = (tmp_path / "README.md").read_text()
    assert "Sampling rate: 100 Hz" in card and "Window length: 10 s" in card and "aVR" in card


class ToyForDiagnosis(CardioFMModel.__mro__[1]):  # CardioFMPreTrainedModel
    """Minimal task model the way finetuning builds one: self.cardiofm + self.head."""

    head_key_prefixes = ("head.",)

    def __init__(self, config):
        super().__init__(config)
        self.cardiofm = CardioFMModel(config)
        self.head = torch.nn.Linear(config.hidden_size, 5)
        self.post_init()


def test_task_model_loads_pretraining_checkpoint_with_exact_missing_keys(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    tiny.save_pretrained(tmp_path)
    task = ToyForDiagnosis.from_pretrained_checked(str(tmp_path))
    assert torch.equal(task.cardiofm.encoder.layers[0].attn.qkv.weight, tiny.cardiofm.encoder.layers[0].attn.qkv.weight)
    # the same class from its own checkpoint: nothing missing
    task.save_pretrained(tmp_path / "task")
    ToyForDiagnosis.from_pretrained_checked(str(tmp_path / "task"))
    # an encoder weight missing from the checkpoint must raise, naming it
    weights = load_file(str(tmp_path / "model.safetensors"))
    del weights["cardiofm.encoder.layers.1.mlp.fc1.weight"]
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="encoder.layers.1.mlp.fc1.weight"):
        ToyForDiagnosis.from_pretrained_checked(str(tmp_path))


def test_bad_inputs_raise_clearly(tiny):
    with pytest.raises(ValueError, match="at least one present channel"):
        tiny.cardiofm(torch.randn(1, 2, 100), torch.tensor([[0, 1]]), torch.tensor([[False, False]]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny.cardiofm(torch.randn(1, 1, 100), torch.tensor([[99]]))
    with pytest.raises(ValueError, match="neither a preset"):
        create_model("huge")


def test_embed_cli_on_real_ptbxl_records(tiny, tmp_path):
    from cardiofm.cli import main
    from tests.conftest import shared_path

    rec = shared_path("ptbxl", "records100", "00000", "00001_lr.hea")
    tiny.save_pretrained(tmp_path / "model")
    out = tmp_path / "emb.npz"
    rc = main(["embed", "--model", str(tmp_path / "model"), str(rec)[:-4], str(tmp_path / "missing"), "--out", str(out)])
    data = np.load(out)  # plain arrays: loads without allow_pickle
    assert rc == 1  # the missing file is reported and skipped, the real record embedded
    assert data["embeddings"].shape == (1, 64) and np.isfinite(data["embeddings"]).all()
    assert data["channel_mask"][0, :12].all() and not data["channel_mask"][0, 12]  # 12 leads, no PPG
