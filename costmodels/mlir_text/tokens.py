"""Tokenizer of MLIR kernel text: the token rules, the vocabulary (:class:`MlirTokenizer`) and
the padded id / value / slot matrices the network reads (:class:`EncodedTexts`).

Rules, chosen so that the vocabulary stays small and closed while the sizes that decide
runtime stay visible:

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
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlsysgym.costmodels.base import CostModelError, ModelFileError, NotFittedError

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
