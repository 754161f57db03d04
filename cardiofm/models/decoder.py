"""Light MAE decoder: encoded context + (channel, time) queries -> patch waveforms."""
from __future__ import annotations

import torch
from torch import nn

from .configuration import CardioFMConfig
from .encoder import TransformerEncoder, key_padding_mask
from .layers import ChannelTimeEmbedding


class CardioFMDecoder(nn.Module):
    """Reconstructs signal patches at arbitrary (channel id, patch start time) queries from encoder features.

    Query token = learned mask token + the decoder's own channel/time/segment embedding; context tokens are the
    encoder outputs projected to the decoder width (they already carry their own channel/time). Context and queries
    attend to each other jointly (MAE-style), so a prediction is conditioned on the whole query set: query the same
    kind of set as in pretraining (all patches of the channels to reconstruct, or all hidden patches).
    """

    def __init__(self, config: CardioFMConfig):
        super().__init__()
        d = config.decoder_hidden_size
        self.context_proj = nn.Linear(config.hidden_size, d)
        self.mask_token = nn.Parameter(torch.zeros(d))
        self.query_position = ChannelTimeEmbedding(len(config.channel_vocab), config.num_segments, d,
                                                   config.time_embed_dim, config.patch_duration_s,
                                                   config.max_time_period_s)
        self.blocks = TransformerEncoder(d, config.decoder_num_layers, config.decoder_num_heads,
                                         config.decoder_intermediate_size, config.layer_norm_eps, config.qkv_bias)
        self.pred = nn.Linear(d, config.patch_size)

    def forward(self, context: torch.Tensor, context_valid: torch.Tensor, query_channel_ids: torch.Tensor,
                query_times_s: torch.Tensor, query_segment_ids: torch.Tensor | None = None,
                query_valid: torch.Tensor | None = None) -> torch.Tensor:
        """context (B, M, H) encoder features, context_valid (B, M) bool, query_channel_ids (B, Q) CHANNEL_VOCAB ids,
        query_times_s (B, Q) patch start times in seconds (same clock as the inputs' time_offsets),
        query_segment_ids (B, Q), query_valid (B, Q) bool -> (B, Q, patch_size) waveform in input units."""
        b, q = query_channel_ids.shape
        if query_segment_ids is None:
            query_segment_ids = torch.zeros_like(query_channel_ids)
        if query_valid is None:
            query_valid = torch.ones(b, q, dtype=torch.bool, device=context.device)
        queries = self.mask_token + self.query_position(query_channel_ids, query_times_s, query_segment_ids)
        x = torch.cat([self.context_proj(context), queries.to(context.dtype)], dim=1)
        x = self.blocks(x, key_padding_mask(torch.cat([context_valid, query_valid.bool()], dim=1)))
        return self.pred(x[:, -q:])
