"""The MLIR text network (torch; training only): token embedding + value · (a learned vector) +
slot and alignment embeddings + a learned position embedding → pre-LayerNorm transformer
encoder layers (hand-written attention with an additive padding mask, so the ONNX export is
plain MatMul/Softmax) → masked mean pooling → a small MLP head, plus a *log-linear readout*
Σ_t c(h_t) · value_t (a contextual weight per token times its log magnitude: log MACs and log
bytes are such sums of log dims) → the standardized log runtime. Auxiliary outputs
(:data:`~mlsysgym.costmodels.mlir_text.tokens.AUX_TARGETS`) are computed first and fed to the
runtime head."""

from __future__ import annotations

import math
from typing import Any

from mlsysgym.costmodels.mlir_text.tokens import (
    MAX_ALIGN,
    N_SLOTS,
    SLOT_STRIDE,
    MlirTextError,
)


def _build_network(vocab_size: int, max_len: int, d_model: int, heads: int, layers: int,
                   ffn: int, dropout: float, seed: int, n_out: int = 1,
                   pool: str = "mean", use_align: bool = True, readouts: int = 0,
                   periodic: int = 0) -> Any:
    """The transformer encoder regressor: (tokens, numbers) (n, L) → (n, n_out); output 0 is
    the target, the others auxiliary targets used only in training."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if d_model % heads:
        raise MlirTextError(f"d_model {d_model} is not a multiple of heads {heads}")

    class Block(nn.Module):
        """Pre-LayerNorm self-attention + feed-forward block with an additive padding mask."""

        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(d_model)
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.proj = nn.Linear(d_model, d_model)
            self.ln2 = nn.LayerNorm(d_model)
            self.ff = nn.Sequential(nn.Linear(d_model, ffn), nn.GELU(), nn.Linear(ffn, d_model))
            self.drop = nn.Dropout(dropout)

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            n, length, _ = x.shape
            hd = d_model // heads
            q, k, v = self.qkv(self.ln1(x)).reshape(n, length, 3, heads, hd).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) * (hd ** -0.5) + bias, dim=-1)
            h = (att @ v).transpose(1, 2).reshape(n, length, d_model)
            x = x + self.drop(self.proj(h))
            return x + self.drop(self.ff(self.ln2(x)))

    n_aux = n_out - 1

    class MlirTextNet(nn.Module):
        """Token + value + position embeddings → encoder blocks → masked mean → heads.

        Auxiliary outputs (sizes) = linear(pooled) + log-linear readout; the target = MLP(pooled,
        auxiliary outputs) + its own log-linear readout, so the target head sees the sizes the
        network read (a learned, roofline-like combination)."""

        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(vocab_size, d_model, padding_idx=0)
            self.value = nn.Linear(1, d_model)
            # periodic number embedding: sin/cos of the log value at learned frequencies
            if periodic:
                self.freq = nn.Parameter(torch.randn(periodic) * 16.0)
                self.periodic = nn.Linear(2 * periodic, d_model)
            self.slot = nn.Embedding(N_SLOTS, d_model)
            self.align = nn.Embedding(MAX_ALIGN + 1, d_model)
            nn.init.normal_(self.align.weight, std=0.02 if use_align else 0.0)
            self.align.weight.requires_grad_(use_align)
            self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln = nn.LayerNorm(d_model)
            width = 2 * d_model if pool == "mean+attn" else d_model
            self.score = nn.Linear(d_model, 1)
            self.head = nn.Sequential(nn.Linear(width + n_aux + readouts, d_model), nn.GELU(),
                                      nn.Linear(d_model, 1))
            self.aux_head = nn.Linear(width, max(n_aux, 1))
            self.coef = nn.Linear(d_model, n_out + readouts)
            nn.init.zeros_(self.coef.weight)
            nn.init.zeros_(self.coef.bias)

        def forward(self, tokens: torch.Tensor, numbers: torch.Tensor,
                    slots: torch.Tensor) -> torch.Tensor:
            length = tokens.shape[1]
            mask = (tokens != 0).to(torch.float32)                      # (n, L)
            place = torch.remainder(slots, SLOT_STRIDE)
            num = self.value(numbers.unsqueeze(-1))
            if periodic:
                angle = 2 * math.pi * numbers.unsqueeze(-1) * self.freq
                num = num + self.periodic(torch.cat([torch.sin(angle), torch.cos(angle)], -1))
            x = self.emb(tokens) + (num + self.slot(place)
                                    + self.align(torch.div(slots, SLOT_STRIDE, rounding_mode="floor"))
                                    ) * mask.unsqueeze(-1)
            x = x + self.pos[:length].unsqueeze(0)
            bias = ((1.0 - mask) * -1e9).unsqueeze(1).unsqueeze(1)      # (n, 1, 1, L)
            for b in self.blocks:
                x = b(x, bias)
            x = self.ln(x)
            pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
            if pool == "mean+attn":  # plus attention pooling with a learned scoring vector
                a = torch.softmax(self.score(x).squeeze(-1) + (1.0 - mask) * -1e9, dim=-1)
                pooled = torch.cat([pooled, (a.unsqueeze(-1) * x).sum(1)], dim=1)
            # log-linear readout: a context-dependent weight per number token times its log
            # magnitude, summed (log MACs / log bytes are such sums of log dims)
            lin = (self.coef(x) * (numbers * mask).unsqueeze(-1)).sum(1)   # (n, n_out)
            free = lin[:, n_out:]  # extra learned log-size sums, inputs of the runtime head
            if n_aux == 0:
                return self.head(torch.cat([pooled, free], dim=1)) + lin[:, :1]
            aux = self.aux_head(pooled) + lin[:, 1:n_out]
            main = self.head(torch.cat([pooled, aux, free], dim=1)) + lin[:, :1]
            return torch.cat([main, aux], dim=1)

    return MlirTextNet()
