"""CardioFMConfig: model sizes, channel vocabulary, patching, text, masking and the data layer's PreprocessConfig."""
from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from ..data.channels import CHANNEL_VOCAB
from ..data.preprocess import PreprocessConfig


@strict
class CardioFMConfig(PreTrainedConfig):
    """Everything needed to rebuild the model and to preprocess new data exactly as in training.

    Signals are cut into patches of `patch_size` samples at `preprocess["fs"]` Hz. The default 25 samples = 0.25 s
    at 100 Hz: long enough to hold a whole QRS complex (80-120 ms) in one token, short enough that a P wave, QRS and
    T wave of one beat land in different tokens; a 10 s window of 12 leads + PPG is 13 x 40 = 520 tokens.
    """

    model_type = "cardiofm"

    # encoder
    hidden_size: int = 384
    num_hidden_layers: int = 12
    num_attention_heads: int = 6
    intermediate_size: int = 1536
    layer_norm_eps: float = 1e-6
    hidden_dropout_prob: float | int = 0.0
    attention_dropout: float | int = 0.0
    qkv_bias: bool = True
    initializer_range: float = 0.02
    # light MAE decoder (pretraining and reconstruction only)
    decoder_hidden_size: int = 256
    decoder_num_layers: int = 2
    decoder_num_heads: int = 4
    decoder_intermediate_size: int = 1024
    # signal tokenisation
    patch_size: int = 25                      # samples per patch at preprocess["fs"]
    channel_vocab: list[str] | None = None    # channel names; a channel's embedding row is its index here
    ecg_input_scale: float = 5.0              # ECG enters in mV (std ~0.2): x5 gives unit scale like z-scored PPG
    num_segments: int = 2                     # two ECGs side by side (question answering on a pair)
    beat_tokens: int = 0                      # median-beat patches per channel (0: off); they start one patch
                                              # before the R peak and take the last segment id
    time_embed_dim: int = 128                 # sinusoidal features of a patch's absolute time
    max_time_period_s: float = 1000.0         # longest sinusoid period, seconds (>> any window)
    time_rope: bool = True                    # rotary attention over patch time: same-time tokens find each other
    rope_max_period_s: float = 100.0          # longest rotary period, seconds; the shortest is 2 patches
    rope_anchor: float = 1.0                  # initial q/k bias in rotary channels: heads start time-local
    preprocess: dict | None = None            # PreprocessConfig.to_dict() of the data layer
    # text
    text_vocab_size: int = 4000
    max_text_len: int = 128
    text_pad_id: int = 0
    text_unk_id: int = 1
    text_cls_id: int = 2
    text_sep_id: int = 3
    text_mask_id: int = 4
    signal_attends_text: bool = False         # False: signal features never depend on the text (contrastive-safe)
    # pretraining objectives
    mask_ratio: float = 0.75                  # fraction of present signal patches hidden from the encoder
    channel_mask_prob: float = 0.5            # probability that a sample also hides whole channels
    text_mask_ratio: float = 0.15
    signal_loss_norm: str = "channel_var"      # "channel_var": MSE / window variance per channel; "none": MSE
    signal_loss_weight: float = 1.0
    text_loss_weight: float = 0.5
    contrastive_loss_weight: float = 0.0
    contrastive_dim: int = 128
    pretraining_data: str = "not pretrained (random initialisation)"
    # what the run that produced these weights saw and reached (models.hub.summary); None: never trained
    training_summary: dict | None = None
    # task heads: every setting a head reads, declared here (None: the head's documented default)
    head_pooling: str = "mean"                # "mean" | "channel" | "beat" (build_head)
    classifier_dropout: float | int = 0.0
    diagnosis_loss: str = "bce"               # "bce" | "asymmetric"
    class_pos_weight: list[float] | None = None
    decision_thresholds: list[float] | None = None   # per-label probability cut-offs tuned on validation data
    window_aggregation: str | None = None     # "mean" | "max" over a record's windows (None: the caller's choice)
    vital_names: list[str] | None = None      # None: all of data.record.VITALS with population defaults
    vital_mean: list[float] | None = None     # target normalisation per vital, physical units
    vital_std: list[float] | None = None
    rate_prior: bool = False                  # HR = measured beat rate + learned correction
    rate_residual_std: float | int = 2.0      # scale of that correction, bpm
    target_task: str | None = None            # "classification" | "regression" (CardioFMForTarget)
    target_names: list[str] | None = None
    target_mean: list[float] | None = None
    target_std: list[float] | None = None
    qa_answers: list[str] | None = None       # question answering (qa_config); None: not a QA checkpoint
    qa_template_ids: list[int] | None = None
    qa_template_options: list[list[int]] | None = None   # allowed answer indices per template
    qa_numeric_mean: list[float] | None = None           # interval features, ms
    qa_numeric_std: list[float] | None = None
    qa_normal_ranges: list[list[float]] | None = None    # (lo, hi) ms per interval feature
    qa_feature_prior: bool | None = None      # numeric features = measured intervals + learned correction
    qa_prior_residual_scale: float | None = None
    qa_noise_thresholds: dict[str, float] | None = None   # 'noise/lead|record' -> yes above (training calibration)
    qa_feature_rules: list[list[int]] | None = None      # per feature x comparison: -1 measured, 0/1 prior
    qa_noise_prior: dict | None = None        # logistic noise prior on measured signal quality; None/{}: heads alone
    qa_noise_correction_scale: float = 0.5    # reach of the heads' tanh correction to that prior, logits
    recon_targets: list[str] | None = None    # None: the 12 leads
    recon_max_lag_s: float = 0.05             # lag-filter reach, seconds each side
    recon_hyper_hidden: int = 64              # width of the subset -> taps network

    def __post_init__(self, **kwargs):
        if self.channel_vocab is None:
            self.channel_vocab = list(CHANNEL_VOCAB)
        if self.preprocess is None:
            self.preprocess = PreprocessConfig().to_dict()
        else:
            self.preprocess = PreprocessConfig.from_dict(self.preprocess).to_dict()  # validates the keys
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject sizes the model cannot be built with."""
        for dim, heads, what in ((self.hidden_size, self.num_attention_heads, "hidden_size"),
                                 (self.decoder_hidden_size, self.decoder_num_heads, "decoder_hidden_size")):
            if dim % heads:
                raise ValueError(f"{what} {dim} is not a multiple of the number of heads {heads}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.signal_loss_norm not in ("channel_var", "none"):
            raise ValueError(f"signal_loss_norm must be 'channel_var' or 'none', got {self.signal_loss_norm!r}")
        if self.beat_tokens < 0 or (self.beat_tokens and self.num_segments < 2):
            raise ValueError(f"beat_tokens {self.beat_tokens} needs >= 0 and num_segments >= 2 (its own segment id)")
        if self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be even, got {self.time_embed_dim}")
        if self.text_mask_id >= self.text_vocab_size:
            raise ValueError("special text ids must lie inside text_vocab_size")

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The data layer's preprocessing settings this checkpoint was trained with."""
        return PreprocessConfig.from_dict(self.preprocess)

    @property
    def sampling_rate(self) -> float:
        """Signal sampling rate the model expects, Hz."""
        return float(self.preprocess["fs"])

    @property
    def window_s(self) -> float:
        """Training window length (maximum duration seen in pretraining), seconds."""
        return float(self.preprocess["window_s"])

    @property
    def beat_segment(self) -> int:
        """Segment id of the median-beat tokens: the last one (QA pairs with beat tokens need num_segments 3)."""
        return self.num_segments - 1

    @property
    def beat_window(self) -> tuple[float, int, int] | None:
        """(fs Hz, samples before the R peak, samples per median beat) of the beat tokens, or None when off."""
        if not self.beat_tokens:
            return None
        return self.sampling_rate, self.patch_size, self.beat_tokens * self.patch_size

    @property
    def patch_duration_s(self) -> float:
        """Duration of one signal token, seconds."""
        return self.patch_size / self.sampling_rate

    def channel_input_scales(self, device=None):
        """(V,) factor per channel-vocabulary entry applied to the waveform before patch projection."""
        import torch

        from ..data.channels import is_ecg

        return torch.tensor([self.ecg_input_scale if is_ecg(c) else 1.0 for c in self.channel_vocab], device=device)

    def rope_dim(self, head_dim: int) -> int:
        """Channels per head rotated by time (half of the head, even); 0 when time_rope is off."""
        return (head_dim // 4) * 2 if self.time_rope else 0

    @property
    def patches_per_window(self) -> int:
        """Tokens per channel in one training window."""
        return -(-int(round(self.window_s * self.sampling_rate)) // self.patch_size)
