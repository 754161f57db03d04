"""The tensors test_hub compares between the saving process and a fresh interpreter (imports only torch, so the
child proves that `import cardiofm` alone makes the Auto classes work)."""
from __future__ import annotations

import torch

FIELD = {"CardioFMModel": "last_hidden_state", "CardioFMForDiagnosis": "logits", "CardioFMForVitals": "predictions",
         "CardioFMForTarget": "predictions"}


def model_outputs(name: str, model, processor, signal, fs, channels) -> dict[str, torch.Tensor]:
    """The tensors compared parent vs child: forward outputs on the processor's batch and the raw-array helper."""
    batch = processor(signal, fs, channels)
    inputs = {k: batch[k] for k in ("signals", "channel_ids", "channel_mask")}
    out = {}
    with torch.no_grad():
        if name in FIELD:
            out["forward"] = getattr(model.eval()(**inputs), FIELD[name]).contiguous()
        if name in ("CardioFMModel", "CardioFMForPretraining"):
            out["helper"] = model.embed(signal, fs, channels)
        elif name == "CardioFMForDiagnosis":
            out["helper"] = torch.tensor(list(model.predict_proba(signal, fs, channels).values()))
        elif name in ("CardioFMForVitals", "CardioFMForTarget"):
            out["helper"] = torch.tensor(list(model.predict(signal, fs, channels).values()))
        else:
            out["helper"] = torch.from_numpy(model.reconstruct(signal[:1], fs, channels[:1]))
    return out
