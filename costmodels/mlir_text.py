"""MLIR text cost model: a tokenizer for MLIR kernels and a small transformer on the tokens.

The approach of the "ML-driven Hardware Cost Model for MLIR" paper: read a kernel's MLIR text
like a sentence and regress a hardware metric (here the measured ``runtime_us`` of the
``iree-cpu`` kernel dataset, ``experiments/mlir_measure.py``) in log space.

Tokenization (:class:`MlirTokenizer`), chosen so that the vocabulary stays small and
closed while the sizes that decide runtime stay visible:

- op, type and attribute names are split at ``.`` and ``_`` into word pieces
  (``linalg.depthwise_conv_2d_nhwc_hwc`` → ``linalg depthwise conv 2d nhwc hwc``,
  ``arith.mulf`` → ``arith mulf``), so an op kind never seen in training still shares most of
  its pieces (``conv``, ``2d``, ``nhwc``) with known ones; string literals stay whole
  (``"parallel"``, ``"reduction"``);
- MLIR punctuation (``( ) { } [ ] < > = : ->``) is one token each; commas and white space are
  dropped (they carry no information the other tokens do not);
- SSA values and block labels lose their numeric suffix (``%x0``, ``%x1`` → ``%x``; ``^bb0`` →
  ``^bb``) and symbols become ``@`` (the vocabulary must not grow with argument counts/names);
- a shaped type is split into its dims and element type, followed by an *element-count* token
  (the product of its dims, a number derived from the text): ``tensor<64x128xf32>`` →
  ``tensor < <dim:7> <dim:8> f32 <numel:14> >``; each token also has a *slot* (a third input):
  a dim's position counted from the innermost dim (1, 2, ...) plus ``SLOT_STRIDE`` × its
  power-of-two alignment (trailing zero bits, ≤ 5: vector widths make multiples of 8/16
  special), ``NUMEL_SLOT`` for the element count, 0 elsewhere — so the network knows which
  log sizes to add into MAC- or byte-like sums without learning it from positions;
- every integer (dims and attribute values) becomes a *log-magnitude bucket* token
  (``<dim:k>`` / ``<int:k>`` with ``k`` = the bit length of the value, so 64 → 7, 65..128 → 8)
  **plus** a continuous value ``log2(1 + n) / 16`` fed to the network beside the token (so
  the exact size survives bucketing); floats are ``<float>`` with ``sign · log2(1 + |v|) / 16``,
  hex constants ``<hex>``;
- the vocabulary is built from the training split (tokens seen at least ``min_count`` times)
  plus the special tokens ``<pad>``, ``<unk>`` and every magnitude bucket (an unseen size is
  never UNK); any other unseen token becomes ``<unk>`` and flags the row out of distribution.

Network (:func:`_build_network`): token embedding + value · (a learned vector) + slot and
alignment embeddings + a learned position embedding → pre-LayerNorm transformer encoder layers (hand-written attention with an
additive padding mask, so the ONNX export is plain MatMul/Softmax) → masked mean pooling → a
small MLP head, plus a *log-linear readout* Σ_t c(h_t) · value_t (a contextual weight per
token times its log magnitude: log MACs and log bytes are such sums of log dims) → the
standardized log runtime. Auxiliary outputs (:data:`AUX_TARGETS`: log FLOPs, bytes read and
written, MACs, iteration points, each iteration-domain size and its alignment — analytic
functions of the text, used as extra training targets only) are computed first and fed to the
runtime head. Trained with AdamW on MSE (+ an in-batch pairwise logistic ranking loss,
``rank_weight``), early-stopped on a validation split; ``members`` > 1 trains an ensemble
whose spread is the prediction's ``std``; member k early-stops on fold k of the training rows
(disjoint folds), so the ensemble trains on every row and ``info.validation`` scores
out-of-fold predictions. Exported with ``torch.onnx.export(dynamo=True)``
(inputs ``tokens`` int64, ``numbers`` float32 and ``slots`` int64, all (batch, length),
dynamic in both;
output ``Y`` (batch, members)). Training uses one torch thread by default: on this shared
2-core machine one thread ran a training step 8× faster than two. At inference the tokenizer
runs in Python and ONNX Runtime runs the network: :meth:`MlirTextCostModel.load` imports
neither torch nor lightgbm. The saved directory has the CostModel format (``model.onnx`` +
``metadata.json``, ``kind`` = ``mlir_text``, the vocabulary under ``tokenizer``), but its
inputs are token matrices, not a feature schema: load it with ``MlirTextCostModel.load``
(``CostModel.load`` does not dispatch on ``kind``).

Baselines on the same rows: :class:`RooflineModel` (an analytical roofline fitted in log
space) and :func:`hand_features` (the columns for a ``LightGBMCostModel``).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from mlsysgym.core.evaluator import Design, Metrics
from mlsysgym.costmodels.base import (
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    ONNX_FILE,
    CostModel,
    CostModelError,
    FitInfo,
    ModelFileError,
    NotFittedError,
    Prediction,
    TargetSpec,
    _session,
    check_version,
    data_hash,
    load_common,
    meta_field,
    parse_field,
    read_saved,
    unit_of,
)

__all__ = ["ALIGN_FEATURES", "AUX_TARGETS", "HAND_FEATURES", "MAX_ALIGN", "NUMEL_SLOT",
           "SLOT_STRIDE", "MlirTextCostModel", "MlirTextError", "MlirTokenizer",
           "OnnxMlirTextModel", "RooflineModel", "alignment", "hand_features", "tokenize",
           "tokenize_slots"]

KIND = "mlir_text"
PAD, UNK = "<pad>", "<unk>"
MAX_BITS = 40          # magnitude buckets 0..MAX_BITS for dims and integers
VALUE_SCALE = 16.0     # numbers channel: log2(1 + n) / VALUE_SCALE


class MlirTextError(CostModelError):
    """Kernel texts or frames that the MLIR text model cannot tokenize or train on."""


_TOKEN_RE = re.compile(r"""
 (?P<str>"[^"]*")
|(?P<shaped>\b(?:tensor|memref|vector)<(?:(?:\d+|\?)x)*[A-Za-z]\w*>)
|(?P<ssa>%[A-Za-z_$.][\w$.]*|%\d+)
|(?P<block>\^[A-Za-z_]\w*)
|(?P<sym>@[\w$.]+)
|(?P<hex>0x[0-9A-F]+\b)
|(?P<dim>\d+(?=x)|\?(?=x))x
|(?P<float>[-+]?\d+\.\d*(?:[eE][-+]?\d+)?)
|(?P<int>[-+]?\d+)
|(?P<ident>[A-Za-z_][\w.$]*)
|(?P<arrow>->)
|(?P<punct>[(){}\[\]<>=:*?|+-])
|(?P<skip>[\s,]+)
|(?P<other>.)
""", re.VERBOSE)
_SHAPED_RE = re.compile(r"(tensor|memref|vector)<((?:(?:\d+|\?)x)*)([A-Za-z]\w*)>")
_DIGITS = re.compile(r"\d+$")
#: Slot ids (the third network input): 0 = a token outside a shaped type's dims, 1..MAX_RANK =
#: a dim of a shaped type counted from the innermost (1 = innermost), NUMEL_SLOT = the element
#: count token of a shaped type.
MAX_RANK = 7
NUMEL_SLOT = MAX_RANK + 1
N_SLOTS = NUMEL_SLOT + 1
#: The auxiliary training targets by default: analytic functions of a kernel's text (FLOPs,
#: bytes read/written, MACs, iteration points, each iteration-domain size and its power-of-two
#: alignment; :func:`mlsysgym.costmodels.mlir_pretrain.analytic_labels`).
AUX_TARGETS: tuple[str, ...] = ("flops", "bytes_read", "bytes_written", "macs", "points",
                                *(f"size{i}" for i in range(MAX_RANK)),
                                *(f"align{i}" for i in range(MAX_RANK)))
#: A dim's slot also carries its alignment: slot + SLOT_STRIDE · a, a = the number of trailing
#: zero bits of the size, capped at MAX_ALIGN (vector widths make multiples of 8/16 special).
SLOT_STRIDE = 16
MAX_ALIGN = 5
_NAME_SPLIT = re.compile(r"[._]")


def alignment(n: int) -> int:
    """Trailing zero bits of ``n`` (0 for 0), capped at :data:`MAX_ALIGN`."""
    n = abs(int(n))
    return min((n & -n).bit_length() - 1, MAX_ALIGN) if n else 0


def _magnitude(n: int) -> int:
    return min(abs(int(n)).bit_length(), MAX_BITS)


#: Token classes that ``compact`` tokenization drops (structure the other tokens imply).
COMPACT_DROP = frozenset({"skip", "punct", "arrow", "ssa", "block", "sym"})


def tokenize(text: str, compact: bool = True) -> list[tuple[str, float]]:
    """The (token, value) sequence of one MLIR text (see the module doc for the rules).

    ``value`` is the log-magnitude of numbers (``log2(1 + n) / 16``, signed for negatives) and
    0 for every other token. ``compact`` drops punctuation, SSA value names, block labels and
    symbols (about 2.3× shorter sequences). Pure and deterministic.
    """
    return [(s, v) for s, v, _ in tokenize_slots(text, compact)]


def _shaped_tokens(s: str, compact: bool) -> list[tuple[str, float, int]]:
    """Tokens of one shaped type ``tensor<4x8xf32>``: the type name, one ``<dim:k>`` per dim
    (slot = position from the innermost dim, 1-based), the element type and a ``<numel:k>``
    token whose value is the log element count (the product of the dims, read from the text)."""
    m = _SHAPED_RE.fullmatch(s)
    assert m is not None
    name, dims_s, elem = m.groups()
    dims = [d for d in dims_s.split("x") if d]
    out: list[tuple[str, float, int]] = [(name, 0.0, 0)]
    if not compact:
        out.append(("<", 0.0, 0))
    numel, dynamic = 1, False
    for j, d in enumerate(dims):
        slot = min(len(dims) - j, MAX_RANK)
        if d == "?":
            out.append(("<dim:?>", 0.0, slot))
            dynamic = True
        else:
            n = int(d)
            numel *= n
            out.append((f"<dim:{_magnitude(n)}>", math.log2(1 + n) / VALUE_SCALE,
                        slot + SLOT_STRIDE * alignment(n)))
    out.append((elem, 0.0, 0))
    if dynamic:
        out.append(("<numel:?>", 0.0, NUMEL_SLOT))
    else:
        out.append((f"<numel:{_magnitude(numel)}>", math.log2(1 + numel) / VALUE_SCALE,
                    NUMEL_SLOT))
    if not compact:
        out.append((">", 0.0, 0))
    return out


def tokenize_slots(text: str, compact: bool = True) -> list[tuple[str, float, int]]:
    """:func:`tokenize` with each token's *slot*: its place in a shaped type (1 = innermost
    dim, 2 = the next, ..., :data:`NUMEL_SLOT` = the element-count token; 0 = elsewhere)."""
    out: list[tuple[str, float, int]] = []
    drop = COMPACT_DROP if compact else frozenset({"skip"})
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        s = m.group(kind or 0)
        if kind in drop:
            continue
        if kind == "shaped":
            out.extend(_shaped_tokens(s, compact))
        elif kind in ("ssa", "block"):
            out.append((_DIGITS.sub("", s) or s[0], 0.0, 0))
        elif kind == "sym":
            out.append(("@", 0.0, 0))
        elif kind == "hex":
            out.append(("<hex>", 0.0, 0))
        elif kind == "dim":
            if s == "?":
                out.append(("<dim:?>", 0.0, 0))
            else:
                n = int(s)
                out.append((f"<dim:{_magnitude(n)}>", math.log2(1 + n) / VALUE_SCALE, 0))
        elif kind == "int":
            n = int(s)
            v = math.copysign(math.log2(1 + abs(n)) / VALUE_SCALE, n)
            out.append((f"<int:{_magnitude(n)}>" if n >= 0 else f"<int:-{_magnitude(n)}>", v, 0))
        elif kind == "float":
            f = float(s)
            out.append(("<float>", math.copysign(math.log2(1 + abs(f)) / VALUE_SCALE, f), 0))
        elif kind == "ident":
            out.extend((part, 0.0, 0) for part in _NAME_SPLIT.split(s) if part)
        else:
            out.append((s, 0.0, 0))
    return out


def _special_tokens() -> list[str]:
    buckets = [f"<dim:{k}>" for k in range(MAX_BITS + 1)] + ["<dim:?>"]
    buckets += [f"<numel:{k}>" for k in range(MAX_BITS + 1)] + ["<numel:?>"]
    buckets += [f"<int:{k}>" for k in range(MAX_BITS + 1)]
    buckets += [f"<int:-{k}>" for k in range(1, MAX_BITS + 1)]
    return [PAD, UNK, "<hex>", "<float>", *buckets]


@dataclass
class EncodedTexts:
    """A batch of tokenized kernels: ids and values (n, length), and per-row OOD flags."""

    tokens: np.ndarray    # int64, 0 = <pad>
    numbers: np.ndarray   # float32
    slots: np.ndarray     # int64: place in a shaped type (see tokenize_slots)
    ood: np.ndarray       # bool: an <unk> token, a number beyond training range, or truncated
    unk_counts: np.ndarray


@dataclass
class MlirTokenizer:
    """A vocabulary over :func:`tokenize`'s tokens (built from training texts) and the
    encoder to padded id/value matrices."""

    vocab: dict[str, int] = field(default_factory=dict)
    max_len: int = 128
    value_range: tuple[float, float] = (-math.inf, math.inf)
    compact: bool = True
    #: ids ≥ ``known`` are tokens only of unmeasured texts: encoding them flags the row OOD
    known: int | None = None

    @classmethod
    def fit(cls, texts: Iterable[str], min_count: int = 1, max_len: int = 128,
            compact: bool = True, unmeasured: Iterable[str] = ()) -> MlirTokenizer:
        """A vocabulary from ``texts``: the special tokens, then tokens seen ≥ ``min_count``
        times, in order of decreasing count (ties alphabetically); then the tokens that only
        ``unmeasured`` texts have (pretraining kernels without runtimes), which keep their own
        embedding but still flag a row out of distribution."""
        counts: Counter[str] = Counter()
        lo, hi = math.inf, -math.inf
        n = 0
        for t in texts:
            n += 1
            toks = tokenize(t, compact)
            counts.update(s for s, _ in toks)
            vals = [v for _, v in toks if v != 0.0]
            if vals:
                lo, hi = min(lo, *vals), max(hi, *vals)
        if n == 0:
            raise MlirTextError("no kernel texts to build a vocabulary from; pass training texts")
        vocab = {s: i for i, s in enumerate(_special_tokens())}
        for s, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if c >= min_count and s not in vocab:
                vocab[s] = len(vocab)
        known = len(vocab)
        extra = Counter(s for t in unmeasured for s, _ in tokenize(t, compact))
        for s in sorted(extra, key=lambda s: (-extra[s], s)):
            vocab.setdefault(s, len(vocab))
        return cls(vocab, int(max_len), (float(lo), float(hi)) if lo <= hi else (0.0, 0.0),
                   compact, known)

    def __len__(self) -> int:
        return len(self.vocab)

    def ids(self, text: str) -> list[int]:
        """Vocabulary ids of one text (unseen tokens → the ``<unk>`` id), not truncated."""
        unk = self.vocab[UNK]
        return [self.vocab.get(s, unk) for s, _ in tokenize(text, self.compact)]

    def encode(self, texts: Sequence[str], pad_to: int | None = None) -> EncodedTexts:
        """Padded (n, L) ids and values, L = the longest row (≤ ``max_len``) or ``pad_to``."""
        if not self.vocab:
            raise NotFittedError("MlirTokenizer has no vocabulary; build one with MlirTokenizer.fit")
        unk = self.vocab[UNK]
        known = len(self.vocab) if self.known is None else self.known
        rows = [tokenize_slots(t, self.compact) for t in texts]
        longest = max((len(r) for r in rows), default=1)
        length = max(1, min(longest, self.max_len)) if pad_to is None else int(pad_to)
        n = len(rows)
        tok = np.zeros((n, length), dtype=np.int64)
        num = np.zeros((n, length), dtype=np.float32)
        slot = np.zeros((n, length), dtype=np.int64)
        ood = np.zeros(n, dtype=bool)
        unks = np.zeros(n, dtype=np.int64)
        lo, hi = self.value_range
        for i, r in enumerate(rows):
            if len(r) > length:
                ood[i] = True
                r = r[:length]
            ids = [self.vocab.get(s, unk) for s, _, _ in r]
            vals = [v for _, v, _ in r]
            tok[i, :len(ids)] = ids
            num[i, :len(vals)] = vals
            slot[i, :len(ids)] = [k for _, _, k in r]
            unks[i] = sum(1 for j in ids if j == unk)
            if unks[i] or max(ids, default=0) >= known or any(
                    v != 0.0 and not (lo - 1e-9 <= v <= hi + 1e-9) for v in vals):
                ood[i] = True
        return EncodedTexts(tok, num, slot, ood, unks)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (saved in the model's metadata)."""
        inv = sorted(self.vocab.items(), key=lambda kv: kv[1])
        return {"tokens": [s for s, _ in inv], "max_len": self.max_len,
                "value_range": list(self.value_range), "value_scale": VALUE_SCALE,
                "max_bits": MAX_BITS, "compact": self.compact, "slot_stride": SLOT_STRIDE,
                "numel_slot": NUMEL_SLOT, "known": self.known}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MlirTokenizer:
        """The tokenizer saved by :meth:`to_json`."""
        if float(d.get("value_scale", VALUE_SCALE)) != VALUE_SCALE:
            raise ModelFileError("tokenizer was saved with another value scale; retrain the model")
        if (d.get("slot_stride"), d.get("numel_slot")) != (SLOT_STRIDE, NUMEL_SLOT):
            raise ModelFileError("tokenizer was saved by an older MLIR text model (no slots or "
                                 "element-count tokens); retrain the model")
        lo, hi = d.get("value_range", [-math.inf, math.inf])
        return cls({s: i for i, s in enumerate(d["tokens"])}, int(d["max_len"]),
                   (float(lo), float(hi)), bool(d.get("compact", True)), d.get("known"))


def _texts_of(inputs: Any, column: str) -> list[str]:
    """Kernel texts from a DataFrame/mapping column, a list of texts or design dicts, or a text."""
    if isinstance(inputs, str):
        return [inputs]
    if hasattr(inputs, "columns"):
        if column not in inputs.columns:
            raise MlirTextError(f"frame has no {column!r} column of MLIR texts; columns are "
                                f"{list(inputs.columns)[:12]}")
        return [str(t) for t in inputs[column].tolist()]
    if isinstance(inputs, Mapping):
        if column not in inputs:
            raise MlirTextError(f"input has no {column!r} key of MLIR text(s)")
        v = inputs[column]
        return [v] if isinstance(v, str) else [str(t) for t in v]
    out: list[str] = []
    for item in inputs:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Mapping) and column in item:
            out.append(str(item[column]))
        else:
            raise MlirTextError(f"cannot read an MLIR text from {type(item).__name__}; pass "
                                f"strings or dicts with a {column!r} key")
    return out


def _take(enc: EncodedTexts, rows: np.ndarray) -> EncodedTexts:
    """The rows ``rows`` of an encoded batch, trimmed to their longest sequence."""
    width = max(1, int((enc.tokens[rows] != 0).sum(1).max())) if len(rows) else 1
    return EncodedTexts(enc.tokens[rows, :width], enc.numbers[rows, :width],
                        enc.slots[rows, :width], enc.ood[rows], enc.unk_counts[rows])


# ---- network (torch; training only) ------------------------------------------------------------
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


def _members_output(modules: Sequence[Any]) -> Any:
    """A module returning output 0 (the target) of each member network: (n, members) — what is
    exported (auxiliary outputs are dropped)."""
    import torch
    from torch import nn

    class Members(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.nets = nn.ModuleList(modules)

        def forward(self, tokens: Any, numbers: Any, slots: Any) -> Any:
            return torch.cat([net(tokens, numbers, slots)[:, :1] for net in self.nets], dim=1)

    return Members().eval()


def _export(module: Any, max_len: int) -> bytes:
    """Serialized ONNX graph of the network: ``tokens``, ``numbers`` (batch, length) → ``Y``."""
    import contextlib
    import io
    import warnings

    import torch

    module = module.eval()
    example = (torch.ones(2, 8, dtype=torch.int64), torch.zeros(2, 8, dtype=torch.float32),
               torch.ones(2, 8, dtype=torch.int64))
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1, max=max_len)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, example, dynamo=True,
                                    input_names=["tokens", "numbers", "slots"],
                                    output_names=["Y"],
                                    dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length},
                                                    {0: batch, 1: length}),
                                    verbose=False)
    if program is None:
        raise MlirTextError("torch.onnx.export returned no program for the MLIR text model")
    proto = program.model_proto
    proto.ir_version = min(proto.ir_version, 10)
    return proto.SerializeToString()


# ---- the cost model ------------------------------------------------------------------------------
def _aux_labels(frame: Any, wanted: Sequence[str]) -> Any:
    """The auxiliary training targets of a kernel frame: each wanted column the frame has, the
    others computed from its ``kind``/``shape`` columns when it has them
    (:func:`mlsysgym.costmodels.mlir_pretrain.analytic_labels`); unavailable ones are skipped."""
    cols = {c: frame[c] for c in wanted if c in frame.columns}
    missing = [c for c in wanted if c not in cols]
    if missing and {"kind", "shape"} <= set(frame.columns):
        from mlsysgym.costmodels.mlir_pretrain import label_frame

        computed = label_frame(frame)
        cols.update({c: computed[c] for c in missing if c in computed.columns})
    import pandas as pd

    return pd.DataFrame({c: cols[c] for c in wanted if c in cols}, index=frame.index)


def _sgd_step(net: Any, opt: Any, sched: Any, loss: Any) -> None:
    """One optimizer step on ``loss``: gradients clipped to norm 1, then the LR schedule steps."""
    import torch

    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    sched.step()


class MlirTextCostModel(CostModel):
    """Transformer on MLIR kernel text → a runtime metric (``runtime_us``), log-space regression.

    ``fit(frame)`` reads the ``mlir`` column (``text_column``) and the target column; ``predict``
    takes a DataFrame, a list of texts or ``{"mlir": text}`` dicts, or one text. As an
    Evaluator, designs are ``{"mlir": text}`` dicts (the workload is ignored).

    Hyperparameters (:attr:`DEFAULTS`) include options evaluated and left off by default
    (benchmarks/results/mlir_costmodel.md): ``pool="mean+attn"`` adds attention pooling with a
    learned scoring vector; ``readouts=k`` feeds k extra log-linear readouts (learned sums of
    log sizes) into the runtime head; ``alignment=False`` drops the alignment embedding;
    ``pretrain=n`` first trains the encoder for ``pretrain_epochs`` epochs on ``n`` unmeasured
    kernels emitted from perturbed shapes of the training rows
    (:func:`mlsysgym.costmodels.mlir_pretrain.pretrain_frame`; needs the frame's ``kind`` and
    ``shape`` columns) to predict their analytic auxiliary targets (no runtime), and every
    member fine-tunes from those weights (``finetune_lr_scale`` scales the fine-tuning
    learning rate; 0.3 did worse than 1). ``periodic=k`` adds to each number's linear value
    embedding a linear map of sin/cos of its log value at k learned frequencies (0 = off; the
    default 16 lifted the random split's Kendall τ from 0.912/0.910 to 0.922/0.928, one member,
    two seeds). The benchmark trains with ``pretrain=100000, pretrain_epochs=2`` (9 min alone
    on this machine); the library default stays 0 so that a plain ``fit`` takes minutes, not a
    quarter hour.
    """

    kind = KIND
    input_dtype = "int64"

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "d_model": 48, "heads": 4, "layers": 2, "ffn": 96, "dropout": 0.0, "max_len": 160,
        "epochs": 40, "patience": 8, "batch_size": 32, "learning_rate": 3e-3,
        "weight_decay": 1e-4, "min_count": 1, "compact": True, "threads": 1,
        "max_seconds": 600.0, "aux_targets": AUX_TARGETS,
        "aux_weight": 0.3, "rank_weight": 0.5, "token_dropout": 0.0,
        "pool": "mean", "alignment": True, "readouts": 0, "pretrain": 0, "pretrain_epochs": 3,
        "finetune_lr_scale": 1.0, "periodic": 16}

    def __init__(self, members: int = 1, seed: int = 0, text_column: str = "mlir",
                 **hyperparameters: Any) -> None:
        unknown = set(hyperparameters) - set(self.DEFAULTS)
        if unknown:
            raise MlirTextError(f"unknown MLIR text model hyperparameter(s) {sorted(unknown)}; "
                                f"known: {', '.join(self.DEFAULTS)}")
        super().__init__(members=members, seed=seed, **{**self.DEFAULTS, **hyperparameters})
        self.text_column = text_column
        self.tokenizer: MlirTokenizer | None = None
        self.module: Any = None
        self.history: list[dict[str, float]] = []
        self.aux_targets: list[str] = []
        self.pretrain_history: list[dict[str, float]] = []

    # ---- training -----------------------------------------------------------------------------
    def fit(self, frame: Any, features: Sequence[str] = (), targets: Sequence[str] = ("runtime_us",),
            *, valid_fraction: float = 0.1, valid_frame: Any = None, unlabeled: Any = None,
            **_ignored: Any) -> MlirTextCostModel:
        """Train on a DataFrame's ``text_column`` → the (single) target, log-transformed.

        The validation rows for early stopping are ``valid_frame`` when given, else a random
        ``valid_fraction`` of ``frame``. ``features`` is accepted for API symmetry and ignored
        (the text is the only input). ``unlabeled``: kernels without runtimes (a frame of
        ``kind``/``shape``/... design columns, e.g. every kernel of the models a compiler will
        see), used only with ``pretrain``: as extra seeds of the pretraining kernels and in the
        vocabulary (their own tokens still flag a row out of distribution)."""
        t0 = time.perf_counter()
        if len(targets) != 1:
            raise MlirTextError(f"the MLIR text model predicts one target, got {list(targets)}")
        target = targets[0]
        for col in (self.text_column, target):
            if col not in frame.columns:
                raise MlirTextError(f"frame has no {col!r} column; columns are "
                                    f"{list(frame.columns)[:12]}")
        y = frame[target].to_numpy(dtype=np.float64)
        if len(frame) < 8 or not np.isfinite(y).all() or (y <= 0).any():
            raise MlirTextError(f"need >= 8 rows with positive finite {target!r}; drop bad rows")
        texts = _texts_of(frame, self.text_column)
        hp = self.hyperparameters
        seeds, unmeasured = frame, []
        if unlabeled is not None and len(unlabeled) and int(hp["pretrain"]) > 0:
            from mlsysgym.costmodels.mlir_pretrain import seed_frame

            seeds = seed_frame(frame, unlabeled)
            unmeasured = seeds["mlir"].iloc[len(frame):].tolist()
        labels = _aux_labels(frame, hp["aux_targets"])
        aux_cols = list(labels.columns)
        aux = np.log1p(np.maximum(labels.to_numpy(np.float64), 0.0)) if aux_cols \
            else np.zeros((len(y), 0))
        aux_mu, aux_sd = aux.mean(0), np.maximum(aux.std(0), 1e-9)
        if aux.shape[1]:
            aux = (aux - aux_mu) / aux_sd
        self.aux_targets = aux_cols
        self.tokenizer = MlirTokenizer.fit(texts, int(hp["min_count"]), int(hp["max_len"]),
                                           bool(hp["compact"]), unmeasured)
        lt = np.log(y)
        self.targets = [TargetSpec(target, unit_of(target), "log", float(lt.mean()),
                                   float(lt.std()) or 1.0)]
        spec = self.targets[0]
        enc = self.tokenizer.encode(texts)
        z = spec.forward(y)
        # validation rows per member: valid_frame for all, else member k holds out fold k of
        # one permutation (disjoint folds while members × valid_fraction ≤ 1), so an ensemble
        # trains on every row and each row's out-of-fold prediction scores the fit
        if valid_frame is not None:
            va_texts = _texts_of(valid_frame, self.text_column)
            va_y = valid_frame[target].to_numpy(dtype=np.float64)
            va_enc = self.tokenizer.encode(va_texts)
            folds = [(np.arange(len(y)), None)] * self.members
        else:
            perm = np.random.default_rng(self.seed).permutation(len(y))
            nv = max(1, round(len(y) * valid_fraction))
            folds = []
            for k in range(self.members):
                start = (k * nv) % len(y)
                va = np.roll(perm, -start)[:nv]
                folds.append((np.setdiff1d(np.arange(len(y)), va), va))
        import torch

        prev = torch.get_num_threads()
        torch.set_num_threads(int(hp["threads"]))
        try:
            init = None
            if int(hp["pretrain"]) > 0 and aux_cols:
                init = self._pretrain(seeds, aux_cols, aux_mu, aux_sd)
            nets, histories = [], []
            for k, (tr, va) in enumerate(folds):
                v_enc, v_z = (va_enc, spec.forward(va_y)) if va is None else (_take(enc, va), z[va])
                nets.append(self._train(_take(enc, tr), z[tr], v_enc, v_z, aux[tr],
                                        self.seed * 1000 + k, init))
                histories.append(self.history)
            self.history = [h for hs in histories for h in hs]
            self.module = _members_output(nets)
            self.onnx_bytes = _export(self.module, int(hp["max_len"]))
        finally:
            torch.set_num_threads(prev)
        from mlsysgym.costmodels.metrics import regression_report

        if valid_frame is not None:
            pv = self.decode(self._raw_predict(va_enc), va_enc.ood).values[target]
        else:  # out-of-fold: each validation row predicted by the member that did not see it
            rows = np.concatenate([va for _, va in folds])
            cols = np.concatenate([np.full(len(va), k) for k, (_, va) in enumerate(folds)])
            first = np.unique(rows, return_index=True)[1]
            rows, cols = rows[first], cols[first]
            out = np.concatenate([self._raw_predict(_take(enc, rows[i:i + 256]))
                                  for i in range(0, len(rows), 256)])
            va_y = y[rows]
            pv = spec.inverse(out[np.arange(len(rows)), cols])
        self.info = FitInfo(rows=len(y), valid_rows=len(va_y),
                            data_hash=data_hash(enc.tokens.astype(np.float64), lt),
                            validation={target: regression_report(va_y, pv)})
        for col, attr in (("evaluator_id", "source_evaluators"), ("workload_id", "workloads")):
            if col in frame.columns:
                setattr(self.info, attr, sorted({str(v) for v in frame[col].dropna().unique()}))
        self.info.fit_seconds = time.perf_counter() - t0
        self._finish_identity()
        return self

    def _network(self, n_out: int, seed: int) -> Any:
        hp = self.hyperparameters
        assert self.tokenizer is not None
        return _build_network(len(self.tokenizer), int(hp["max_len"]), int(hp["d_model"]),
                              int(hp["heads"]), int(hp["layers"]), int(hp["ffn"]),
                              float(hp["dropout"]), seed, n_out, str(hp["pool"]),
                              bool(hp["alignment"]), int(hp["readouts"]), int(hp["periodic"]))

    def _pretrain(self, frame: Any, aux_cols: Sequence[str], mu: np.ndarray,
                  sd: np.ndarray) -> dict[str, Any]:
        """Weights of a network trained only on the auxiliary outputs (analytic labels,
        standardized like the measured rows') of ``pretrain`` emitted, unmeasured kernels."""
        import torch
        from mlsysgym.costmodels.mlir_pretrain import pretrain_frame

        hp = self.hyperparameters
        assert self.tokenizer is not None
        for col in ("kind", "shape"):
            if col not in frame.columns:
                raise MlirTextError(f"pretraining emits kernels from the frame's kind/shape "
                                    f"columns; the frame has no {col!r}")
        t0 = time.perf_counter()
        gen = pretrain_frame(frame, int(hp["pretrain"]), seed=self.seed + 7919)
        enc = self.tokenizer.encode(_texts_of(gen, "mlir"))
        aux = (np.column_stack([np.log1p(gen[c].to_numpy(np.float64)) for c in aux_cols])
               - mu) / sd
        net = self._network(1 + len(aux_cols), self.seed * 1000 + 999)
        x_tok, x_num = torch.from_numpy(enc.tokens), torch.from_numpy(enc.numbers)
        x_slot = torch.from_numpy(enc.slots)
        ya = torch.tensor(aux, dtype=torch.float32)
        lengths = (enc.tokens != 0).sum(1)
        n, bs, epochs = len(ya), 64, int(hp["pretrain_epochs"])
        opt = torch.optim.AdamW(net.parameters(), lr=float(hp["learning_rate"]),
                                weight_decay=float(hp["weight_decay"]))
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=float(hp["learning_rate"]),
            total_steps=max(epochs * ((n + bs - 1) // bs), 1), pct_start=0.15)
        gen_rng = np.random.default_rng(self.seed + 7919)
        net.train()
        for epoch in range(epochs):
            perm = gen_rng.permutation(n)
            total = 0.0
            for i in range(0, n, bs):
                rows = perm[i:i + bs]
                idx = torch.from_numpy(rows)
                width = int(lengths[rows].max())
                pred = net(x_tok[idx, :width], x_num[idx, :width], x_slot[idx, :width])
                loss = ((pred[:, 1:] - ya[idx]) ** 2).mean()
                _sgd_step(net, opt, sched, loss)
                total += loss.item() * len(rows)
            self.pretrain_history.append({"epoch": epoch + 1, "aux_mse": total / n,
                                          "seconds": time.perf_counter() - t0})
        return net.state_dict()

    def _train(self, tr: EncodedTexts, z: np.ndarray, va: EncodedTexts, zv: np.ndarray,
               aux: np.ndarray, seed: int, init: dict[str, Any] | None = None) -> Any:
        """The trained network: MSE on the standardized log target plus ``aux_weight`` × MSE on
        the standardized log auxiliary targets (FLOPs, bytes, sizes, alignments: what the text
        determines, which teaches the network to read shapes), early-stopped on the target's
        validation MSE."""
        import copy

        import torch

        hp = self.hyperparameters
        assert self.tokenizer is not None
        net = self._network(1 + aux.shape[1], seed)
        if init is not None:  # fine-tune from the pretrained encoder and heads
            net.load_state_dict(init)
        x_tok, x_num = torch.from_numpy(tr.tokens), torch.from_numpy(tr.numbers)
        x_slot = torch.from_numpy(tr.slots)
        yt = torch.tensor(np.column_stack([z, aux]), dtype=torch.float32)
        w_aux = float(hp["aux_weight"])
        v_tok, v_num = torch.from_numpy(va.tokens), torch.from_numpy(va.numbers)
        v_slot = torch.from_numpy(va.slots)
        yv = torch.tensor(zv, dtype=torch.float32).unsqueeze(1)
        lengths = (tr.tokens != 0).sum(1)
        n, bs, epochs = len(yt), int(hp["batch_size"]), int(hp["epochs"])
        steps_per_epoch = (n + bs - 1) // bs
        lr = float(hp["learning_rate"]) * (float(hp["finetune_lr_scale"]) if init else 1.0)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=float(hp["weight_decay"]))
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=max(epochs * steps_per_epoch, 1), pct_start=0.15)
        gen = np.random.default_rng(seed)
        w_rank = float(hp["rank_weight"])
        p_drop = float(hp["token_dropout"])
        tgen = torch.Generator().manual_seed(seed)
        unk_id = self.tokenizer.vocab[UNK]
        named = torch.from_numpy((tr.tokens > 0) & (tr.numbers == 0.0))
        best, best_state, since = math.inf, None, 0
        self.history = []
        t0 = time.perf_counter()
        for epoch in range(epochs):
            net.train()
            perm = gen.permutation(n)
            total = 0.0
            for i in range(0, n, bs):
                idx = torch.from_numpy(perm[i:i + bs])
                width = int(lengths[perm[i:i + bs]].max())
                toks = x_tok[idx, :width]
                if p_drop > 0:  # word dropout: name tokens → <unk>, to rely on structure too
                    hit = (torch.rand(toks.shape, generator=tgen) < p_drop) & named[idx, :width]
                    toks = torch.where(hit, torch.full_like(toks, unk_id), toks)
                pred = net(toks, x_num[idx, :width], x_slot[idx, :width])
                err = (pred - yt[idx]) ** 2
                loss = err[:, 0].mean()
                if err.shape[1] > 1:
                    loss = loss + w_aux * err[:, 1:].mean()
                if w_rank > 0:  # in-batch pairwise logistic ranking loss on the target
                    dy = yt[idx, 0].unsqueeze(0) - yt[idx, 0].unsqueeze(1)
                    dp = pred[:, 0].unsqueeze(0) - pred[:, 0].unsqueeze(1)
                    keep = (dy.abs() > 0.02).to(torch.float32)
                    pair = torch.nn.functional.softplus(-torch.sign(dy) * dp * 4.0) * keep
                    loss = loss + w_rank * pair.sum() / keep.sum().clamp(min=1.0)
                _sgd_step(net, opt, sched, loss)
                total += loss.item() * len(idx)
            net.eval()
            with torch.no_grad():
                v = float(torch.nn.functional.mse_loss(net(v_tok, v_num, v_slot)[:, :1], yv))
            self.history.append({"epoch": epoch + 1, "train_mse": total / n, "valid_mse": v,
                                 "seconds": time.perf_counter() - t0})
            if v < best - 1e-5:
                best, best_state, since = v, copy.deepcopy(net.state_dict()), 0
            else:
                since += 1
            if since >= int(hp["patience"]) or time.perf_counter() - t0 > float(hp["max_seconds"]):
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        return net.eval()

    def _fit_arrays(self, x: np.ndarray, z: np.ndarray, x_valid: np.ndarray | None,
                    z_valid: np.ndarray | None) -> None:
        raise MlirTextError("MlirTextCostModel trains from texts; call fit(frame)")

    def _export_onnx(self, n_inputs: int) -> bytes:
        if self.onnx_bytes is None:
            raise NotFittedError("MlirTextCostModel is not fitted; call fit()")
        return self.onnx_bytes

    # ---- inference ----------------------------------------------------------------------------
    def _require_tokenizer(self) -> MlirTokenizer:
        if self.tokenizer is None or not self.targets:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or "
                                 f"MlirTextCostModel.load()")
        return self.tokenizer

    def encode_texts(self, inputs: Any) -> EncodedTexts:
        """Token ids and values of ``inputs`` (texts, frame, dicts) — the ONNX inputs."""
        return self._require_tokenizer().encode(_texts_of(inputs, self.text_column))

    def _raw_predict(self, x: Any) -> np.ndarray:
        import torch

        if self.module is None:
            raise NotFittedError("MlirTextCostModel is not fitted; call fit()")
        with torch.no_grad():
            return self.module(torch.from_numpy(x.tokens), torch.from_numpy(x.numbers),
                               torch.from_numpy(x.slots)).numpy()

    def predict(self, inputs: Any, strict: bool = False, batch_size: int = 512) -> Prediction:
        """Predicted runtimes of kernel texts (a frame with the text column, texts, dicts);
        ``ood`` flags rows with unseen tokens, sizes beyond the training range, or truncation."""
        texts = _texts_of(inputs, self.text_column)
        tok = self._require_tokenizer()
        outs, oods = [], []
        for i in range(0, len(texts), batch_size):
            enc = tok.encode(texts[i:i + batch_size])
            outs.append(np.asarray(self._raw_predict(enc)))
            oods.append(enc.ood)
        if not texts:
            return self.decode(np.zeros((0, 1)), np.zeros(0, dtype=bool))
        return self.decode(np.concatenate(outs), np.concatenate(oods))

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        pred = self.predict(list(designs))
        out: Metrics = dict(pred.values)
        out["ood"] = pred.ood.astype(np.float64)
        return out

    # ---- persistence --------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The JSON metadata saved beside the ONNX graph (tokenizer included)."""
        tok = self._require_tokenizer()
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND,
            "name": self.name, "version": self.version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "onnx": {"file": ONNX_FILE, "inputs": ["tokens", "numbers", "slots"],
                     "input_dtypes": ["int64", "float32", "int64"], "output": "Y",
                     "layout": "(n, members): standardized log target per member"},
            "members": self.members, "seed": self.seed, "text_column": self.text_column,
            "tokenizer": tok.to_json(),
            "targets": [vars(t) for t in self.targets],
            "hyperparameters": self.hyperparameters,
            "training": {"rows": self.info.rows, "valid_rows": self.info.valid_rows,
                         "data_hash": self.info.data_hash, "fit_seconds": self.info.fit_seconds,
                         "epochs_run": len(self.history),
                         "source_evaluators": self.info.source_evaluators,
                         "workloads": self.info.workloads},
            "validation": self.info.validation,
        }

    @staticmethod
    def load(directory: str | os.PathLike[str], threads: int = 1) -> OnnxMlirTextModel:  # type: ignore[override]
        """A saved MLIR text model run by ONNX Runtime (no torch import)."""
        return OnnxMlirTextModel.from_dir(directory, threads=threads)


class OnnxMlirTextModel(MlirTextCostModel):
    """A saved MLIR text model: Python tokenizer + ONNX Runtime network."""

    def __init__(self) -> None:
        super().__init__()
        self.session: Any = None
        self.meta: dict[str, Any] = {}
        self.path: Path | None = None

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], threads: int = 1) -> OnnxMlirTextModel:
        """Load ``model.onnx`` + ``metadata.json`` written by :meth:`MlirTextCostModel.save`."""
        meta, onnx_bytes = read_saved(directory, "MLIR text model")
        if meta.get("format") != FORMAT or meta.get("kind") != KIND:
            raise ModelFileError(f"{Path(directory) / META_FILE} is not a {FORMAT} file of "
                                 f"kind {KIND!r}")
        m = cls()
        m.meta, m.path = meta, Path(directory)
        m.text_column = meta_field(meta, "text_column", str, directory, "mlir")
        load_common(m, meta, onnx_bytes, directory, threads, members=1)
        m.tokenizer = parse_field(meta, "tokenizer", MlirTokenizer.from_json, directory)
        m.name = meta.get("name", m.name)
        m._finish_identity()
        check_version(m, meta, directory)
        return m

    def fit(self, *args: Any, **kwargs: Any) -> MlirTextCostModel:
        raise MlirTextError("a loaded MLIR text model cannot be refitted; train a new "
                            "MlirTextCostModel")

    def _raw_predict(self, x: Any) -> np.ndarray:
        return self.session.run(None, {"tokens": x.tokens, "numbers": x.numbers,
                                       "slots": x.slots})[0]

    def __getstate__(self) -> dict[str, Any]:
        """Picklable: the ONNX Runtime session is rebuilt from the bytes."""
        state = super().__getstate__()
        state["session"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.onnx_bytes is not None:
            self.session = _session(self.onnx_bytes, 1)


# ---- baselines -----------------------------------------------------------------------------------
#: Hand features of a kernel row for the gradient-boosting baseline (see :func:`hand_features`).
HAND_FEATURES: tuple[str, ...] = (
    "kind", "op", "rank", "log2_macs", "log2_flops", "log2_bytes_read", "log2_bytes_written",
    "log2_bytes", "log2_intensity", "log2_points", "stride_f", *(f"log2_d{i}" for i in range(7)))
#: Not in the issue's hand-feature list, added for a reference model: each iteration-domain
#: size's power-of-two alignment (trailing zero bits, ≤ 5), which the text model's tokenizer sees.
ALIGN_FEATURES: tuple[str, ...] = tuple(f"align_d{i}" for i in range(7))


def hand_features(frame: Any) -> Any:
    """A copy of a kernel-dataset frame with the :data:`HAND_FEATURES` columns added: op kind
    and element-wise/reduction op (categorical), rank, log2 of MACs, FLOPs, bytes read, written
    and total, arithmetic intensity (FLOPs per byte), the output points (product of the
    ``shape`` iteration domain), stride, and log2 of each iteration-domain size (0 if absent);
    plus the :data:`ALIGN_FEATURES` columns (alignment of each size, 0 if absent)."""
    import pandas as pd

    f = frame.copy()
    f["op"] = f["op"].fillna("").astype(str) if "op" in f else ""
    f["kind"] = f["kind"].astype(str)
    total = f["bytes_read"].to_numpy(np.float64) + f["bytes_written"].to_numpy(np.float64)
    flops = f["flops"].to_numpy(np.float64)
    f["log2_macs"] = np.log2(1.0 + f["macs"].to_numpy(np.float64))
    f["log2_flops"] = np.log2(1.0 + flops)
    f["log2_bytes_read"] = np.log2(1.0 + f["bytes_read"].to_numpy(np.float64))
    f["log2_bytes_written"] = np.log2(1.0 + f["bytes_written"].to_numpy(np.float64))
    f["log2_bytes"] = np.log2(1.0 + total)
    f["log2_intensity"] = np.log2((1.0 + flops) / np.maximum(total, 1.0))
    dims = [[int(p) for p in str(s).split("x") if p] for s in f["shape"]]
    f["log2_points"] = [math.log2(max(math.prod(d), 1)) for d in dims]
    for i in range(7):
        f[f"log2_d{i}"] = [math.log2(d[i]) if i < len(d) else 0.0 for d in dims]
        f[f"align_d{i}"] = [float(alignment(d[i])) if i < len(d) else 0.0 for d in dims]
    f["stride_f"] = pd.to_numeric(f.get("stride", 1), errors="coerce").fillna(1.0).astype(float)
    return f


@dataclass
class RooflineModel:
    """Analytical roofline: ``runtime = t0 + max(flops / peak, bytes / bandwidth)``.

    ``peak`` (FLOP/µs), ``bandwidth`` (bytes/µs) and the launch overhead ``t0`` (µs, ≥ 0) are
    fitted by least squares on ``log(runtime)`` of the training rows (Nelder–Mead from a grid of
    starting points; parameters in log space). ``t0`` is an addition to the textbook two-parameter
    form: it does not change the ranking (a monotone shift) but stops tiny kernels from
    dominating the log-space fit. ``bytes`` = bytes read + written; ``flops`` = the parsed
    FLOPs (2 per MAC, one per element-wise/reduction operation)."""

    peak: float = 1.0
    bandwidth: float = 1.0
    t0: float = 0.0
    target: str = "runtime_us"
    fit_rmse_log: float = float("nan")

    @staticmethod
    def _work(frame: Any) -> tuple[np.ndarray, np.ndarray]:
        flops = np.maximum(frame["flops"].to_numpy(np.float64), 1.0)
        byts = np.maximum(frame["bytes_read"].to_numpy(np.float64)
                          + frame["bytes_written"].to_numpy(np.float64), 1.0)
        return flops, byts

    @staticmethod
    def _curve(theta: np.ndarray, flops: np.ndarray, byts: np.ndarray) -> np.ndarray:
        lp, lb, lt0 = theta
        return np.log(np.exp(lt0) + np.maximum(flops / np.exp(lp), byts / np.exp(lb)))

    def fit(self, frame: Any) -> RooflineModel:
        """Fit ``peak``, ``bandwidth`` and ``t0`` to the frame's target column."""
        from scipy.optimize import minimize

        flops, byts = self._work(frame)
        ly = np.log(frame[self.target].to_numpy(np.float64))

        def loss(theta: np.ndarray) -> float:
            return float(np.mean((self._curve(theta, flops, byts) - ly) ** 2))

        best = None
        lp0 = float(np.median(np.log(flops) - ly))
        lb0 = float(np.median(np.log(byts) - ly))
        for dp in (-2.0, 0.0, 2.0):
            for db in (-2.0, 0.0, 2.0):
                for lt0 in (-3.0, 0.0, 1.5):
                    r = minimize(loss, np.array([lp0 + dp, lb0 + db, lt0]), method="Nelder-Mead",
                                 options={"xatol": 1e-5, "fatol": 1e-8, "maxiter": 4000})
                    if best is None or r.fun < best.fun:
                        best = r
        assert best is not None
        lp, lb, lt0 = best.x
        self.peak, self.bandwidth, self.t0 = float(np.exp(lp)), float(np.exp(lb)), float(np.exp(lt0))
        self.fit_rmse_log = float(np.sqrt(best.fun))
        return self

    def predict(self, frame: Any) -> Prediction:
        """Roofline runtimes of the frame's kernels (never flagged out of distribution)."""
        flops, byts = self._work(frame)
        v = self.t0 + np.maximum(flops / self.peak, byts / self.bandwidth)
        return Prediction({self.target: v}, None, np.zeros(len(v), dtype=bool))
