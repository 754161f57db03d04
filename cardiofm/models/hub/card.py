"""The model card (README.md) generated for every saved checkpoint."""
from __future__ import annotations

from pathlib import Path

CARD_NAME = "README.md"


def model_card(config, model_class: str = "CardioFMForPretraining") -> str:
    """Markdown card stating what a user needs to feed the model correctly."""
    pre = config.preprocess
    n_params_note = f"{config.num_hidden_layers} layers x {config.hidden_size} hidden, {config.num_attention_heads} heads"
    norm = (f"ECG: {pre['ecg_norm']} (kept in mV)" if pre["ecg_norm"] == "none" else f"ECG: {pre['ecg_norm']}") + \
        f"; PPG/ABP/RESP: {pre['other_norm']} per window; clipped to +-{pre['clip']}"
    return "\n".join([
        "---", "library_name: transformers", "license: apache-2.0",
        "tags: [cardiofm, ecg, ppg, biosignals, masked-autoencoder]", "---", "",
        f"# cardiofm ({model_class})", "",
        "Multimodal masked-transformer foundation model for cardiac signals (ECG, PPG) and report text.", "",
        "## Input", "",
        f"- Sampling rate: {config.sampling_rate:g} Hz",
        f"- Window length: {config.window_s:g} s (stride {pre['stride_s']:g} s); patch {config.patch_size} samples = "
        f"{config.patch_duration_s:g} s, {config.patches_per_window} patches per channel"
        + (f" + {config.beat_tokens} median-beat patches (R-peak aligned, computed by the model from its input)"
           if config.beat_tokens else ""),
        f"- Channel layout of the preprocessing: {', '.join(pre['channels'])}",
        f"- Channel vocabulary (embedding ids, by name): {', '.join(config.channel_vocab)}",
        f"- Filtering: ECG band-pass {pre['ecg_band_hz'][0]:g}-{pre['ecg_band_hz'][1]:g} Hz, PPG "
        f"{pre['ppg_band_hz'][0]:g}-{pre['ppg_band_hz'][1]:g} Hz, zero-phase Butterworth order {pre['filter_order']}",
        f"- Normalisation: {norm}",
        f"- Text: sentencepiece report tokenizer, vocabulary {config.text_vocab_size}, up to {config.max_text_len} "
        "tokens (German and English reports)", "",
        "Preprocess new recordings with `cardiofm.data.preprocess.prepare_input(signal, fs, channels, "
        "PreprocessConfig.from_dict(model.config.preprocess))` so they match training exactly.", "",
        "## Architecture", "",
        f"- Encoder: {n_params_note}; decoder {config.decoder_num_layers} x {config.decoder_hidden_size}",
        f"- Pretraining: masked signal modelling (mask ratio {config.mask_ratio:g}, whole-channel masking p="
        f"{config.channel_mask_prob:g}), masked report modelling (ratio {config.text_mask_ratio:g}), "
        f"ECG-text contrastive weight {config.contrastive_loss_weight:g}", "",
        "## Pretraining data", "", config.pretraining_data, "",
        "## Usage", "", "```python", "import cardiofm", "from cardiofm.models import create_model",
        "model = create_model('<this repo id or directory>')", "out = model.cardiofm(**batch)  # collate_samples batch",
        "```", "",
        "Not a medical device; outputs are research results, not clinical findings.", "",
    ])


def write_model_card(config, save_directory, model_class: str = "CardioFMForPretraining") -> Path:
    """Write README.md into save_directory unless a card already exists there."""
    path = Path(save_directory) / CARD_NAME
    if not path.exists():
        path.write_text(model_card(config, model_class), encoding="utf-8")
    return path
