"""Request traces for the serving simulator: read JSON lines, or generate Poisson arrivals.

A trace is three arrays, one entry per request: ``arrival_s`` (seconds from the start),
``input_tokens`` and ``output_tokens``. Files are JSON lines with those keys, or with APEX's
keys (``StartTimeOffset`` in nanoseconds, ``ContextTokens``, ``GeneratedTokens``).

Generators draw Poisson arrivals at ``rate`` requests/s and log-normal lengths (σ = 1, an
assumption) whose medians follow published workload statistics:

==============  =========================  =================================================
workload        input / output (median)    source
==============  =========================  =================================================
chat            161 / 338 (means)          ShareGPT means in Kwon et al., "Efficient Memory
                                           Management for LLM Serving with PagedAttention",
                                           SOSP 2023 (Fig. 11)
conversation    1020 / 129                 Azure LLM inference trace, conversation (Patel et
                                           al., "Splitwise", ISCA 2024, Fig. 3)
code            1500 / 13                  Azure LLM inference trace, coding (Splitwise)
summarization   781 / 56 (means)           CNN/DailyMail articles / summaries (See et al.,
                                           "Get To The Point", ACL 2017, Sec. 4)
==============  =========================  =================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["WORKLOADS", "Trace", "TraceError", "fixed_trace", "poisson_trace", "read_trace"]


class TraceError(MlsysgymError):
    """A trace file that cannot be read, or a generator argument out of range."""


@dataclass(frozen=True, eq=False)  # holds arrays: identity equality and hash
class Trace:
    """Requests sorted by arrival: arrival times (s), prompt and output lengths (tokens)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    name: str = "trace"

    def __post_init__(self) -> None:
        a = np.asarray(self.arrival_s, float)
        i = np.asarray(self.input_tokens, np.int64)
        o = np.asarray(self.output_tokens, np.int64)
        if not (a.shape == i.shape == o.shape) or a.ndim != 1 or len(a) == 0:
            raise TraceError(f"trace {self.name!r} needs equal-length, non-empty arrays")
        if np.any(i < 1) or np.any(o < 1) or not np.all(np.isfinite(a)):
            raise TraceError(f"trace {self.name!r}: lengths must be >= 1 and arrivals finite")
        order = np.argsort(a, kind="stable")
        object.__setattr__(self, "arrival_s", a[order])
        object.__setattr__(self, "input_tokens", i[order])
        object.__setattr__(self, "output_tokens", o[order])

    def __len__(self) -> int:
        return len(self.arrival_s)

    def subset(self, idx: np.ndarray, name: str | None = None) -> Trace:
        """The requests at ``idx`` as a trace."""
        return Trace(self.arrival_s[idx], self.input_tokens[idx], self.output_tokens[idx],
                     name or self.name)

    @property
    def key(self) -> str:
        """A content hash (for evaluator caches)."""
        import hashlib

        h = hashlib.sha256()
        for a in (self.arrival_s, self.input_tokens, self.output_tokens):
            h.update(np.ascontiguousarray(a).tobytes())
        return f"{self.name}#{h.hexdigest()[:16]}"


def read_trace(path: str | Path) -> Trace:
    """A trace from JSON lines (``arrival_s``/``input_tokens``/``output_tokens``, or APEX's
    ``StartTimeOffset`` (ns)/``ContextTokens``/``GeneratedTokens``)."""
    p = Path(path)
    try:
        lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror}") from None
    arr, inp, out = [], [], []
    for n, line in enumerate(lines, 1):
        try:
            r = json.loads(line)
            if "arrival_s" in r:
                arr.append(float(r["arrival_s"]))
                inp.append(int(r["input_tokens"]))
                out.append(int(r["output_tokens"]))
            else:
                arr.append(float(r["StartTimeOffset"]) * 1e-9)
                inp.append(int(r["ContextTokens"]))
                out.append(int(r["GeneratedTokens"]))
        except (ValueError, KeyError, TypeError) as e:
            raise TraceError(f"{path}:{n}: not a trace record ({type(e).__name__}: {e}); need "
                             f"arrival_s/input_tokens/output_tokens") from None
    if not arr:
        raise TraceError(f"trace {path} is empty")
    return Trace(np.array(arr), np.array(inp), np.array(out), p.stem)


#: (input median, output median, sigma) of the log-normal length models; see the table above.
WORKLOADS: dict[str, tuple[float, float, float]] = {
    "chat": (161.0 * np.exp(-0.5), 338.0 * np.exp(-0.5), 1.0),  # means → medians at σ = 1
    "conversation": (1020.0, 129.0, 1.0),
    "code": (1500.0, 13.0, 1.0),
    "summarization": (781.0 * np.exp(-0.5), 56.0 * np.exp(-0.5), 1.0),
}


def poisson_trace(rate: float, n: int, workload: str = "chat", seed: int = 0,
                  max_len: int = 8192) -> Trace:
    """``n`` requests arriving as a Poisson process of ``rate`` requests/s with a named
    workload's length distribution (lengths clipped to [1, max_len])."""
    if rate <= 0 or n < 1:
        raise TraceError(f"need rate > 0 and n >= 1, got rate={rate}, n={n}")
    if workload not in WORKLOADS:
        raise TraceError(f"unknown workload {workload!r}; use one of {sorted(WORKLOADS)}")
    rng = np.random.default_rng(seed)
    mi, mo, sigma = WORKLOADS[workload]
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    inp = np.clip(np.rint(rng.lognormal(np.log(mi), sigma, n)), 1, max_len)
    out = np.clip(np.rint(rng.lognormal(np.log(mo), sigma, n)), 1, max_len)
    return Trace(arrivals, inp.astype(np.int64), out.astype(np.int64), f"{workload}-r{rate:g}")


def fixed_trace(rate: float, n: int, input_len: int, output_len: int, seed: int = 0) -> Trace:
    """``n`` requests of fixed lengths with Poisson arrivals at ``rate`` (``rate=inf``: all at
    time 0, an offline batch)."""
    if n < 1 or input_len < 1 or output_len < 1 or rate <= 0:
        raise TraceError("need n, input_len, output_len >= 1 and rate > 0")
    if np.isinf(rate):
        arrivals = np.zeros(n)
    else:
        arrivals = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, n))
    return Trace(arrivals, np.full(n, input_len), np.full(n, output_len),
                 f"fixed-{input_len}x{output_len}-r{rate:g}")
