"""Memory and time limits on every subprocess mlsysgym starts (``iree-compile``, the SCALE-Sim
and Ramulator reference runs, ...), so that one bad input cannot exhaust the machine.

- Memory: the child's address space is capped with ``RLIMIT_AS``: the command runs under
  util-linux's ``prlimit --as`` (the cap is in place before the program starts), or, without
  that tool, the cap is set from this process right after the child starts. Never a
  ``preexec_fn``: Python code between fork and exec can deadlock a threaded process. Default: min(8 GiB, half of this machine's RAM); the environment variable
  ``MLSYSGYM_SUBPROCESS_MEM_GB`` overrides it (``0`` removes the cap).
- Time: a wall-clock timeout; the caller's own timeout if it gives one, else
  ``MLSYSGYM_SUBPROCESS_TIMEOUT_S`` (default 600 s).

Going past either limit is a :class:`ResourceLimitError` whose one-line message names the limit
and the variable that raises it. Only POSIX systems with the ``resource`` module get the memory
cap; elsewhere only the timeout applies.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlsysgym.core.errors import MlsysgymError

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = ["MEMORY_ENV", "TIMEOUT_ENV", "Limits", "ResourceLimitError", "run_limited",
           "subprocess_limits"]

MEMORY_ENV = "MLSYSGYM_SUBPROCESS_MEM_GB"
TIMEOUT_ENV = "MLSYSGYM_SUBPROCESS_TIMEOUT_S"
DEFAULT_MEMORY_CAP_GB = 8.0
DEFAULT_TIMEOUT_S = 600.0
GIB = 2**30

# What a child prints when an allocation fails under RLIMIT_AS: LLVM ("LLVM ERROR: out of
# memory"), C++ (std::bad_alloc), Python (MemoryError), glibc/ld.so ("Cannot allocate memory",
# "failed to map segment" while loading a shared library).
_OOM_RE = re.compile(r"out of memory|bad_alloc|MemoryError|Cannot allocate memory|"
                     r"failed to map segment|Allocation failed", re.IGNORECASE)


class ResourceLimitError(MlsysgymError):
    """A subprocess went past its memory or time limit (or a limit setting is invalid)."""


@dataclass(frozen=True)
class Limits:
    """The limits a subprocess runs under: ``memory_bytes`` (None: no cap) and ``timeout_s``."""

    memory_bytes: int | None
    timeout_s: float

    @property
    def memory_text(self) -> str:
        return "no" if self.memory_bytes is None else f"{self.memory_bytes / GIB:g} GiB"


def _machine_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _env_number(name: str) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ResourceLimitError(f"{name}={text!r} is not a number >= 0")
    return value


def subprocess_limits(timeout_s: float | None = None) -> Limits:
    """The limits for the next subprocess: ``timeout_s`` if given (else the environment's or
    600 s) and the memory cap of the environment (else min(8 GiB, half of the RAM))."""
    mem_gb = _env_number(MEMORY_ENV)
    if mem_gb is None:
        ram = _machine_memory_bytes()
        cap = int(DEFAULT_MEMORY_CAP_GB * GIB)
        memory: int | None = min(cap, ram // 2) if ram else cap
    else:
        memory = int(mem_gb * GIB) if mem_gb > 0 else None
    if timeout_s is None:
        env_t = _env_number(TIMEOUT_ENV)
        timeout_s = DEFAULT_TIMEOUT_S if env_t is None or env_t == 0 else env_t
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ResourceLimitError(f"a subprocess timeout must be a finite number > 0, got "
                                 f"{timeout_s!r}")
    return Limits(memory, float(timeout_s))


def run_limited(cmd: Sequence[str], what: str, *, input: bytes | None = None,
                timeout_s: float | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd)`` with output captured (bytes), under :func:`subprocess_limits`.

    Returns the completed process whatever its exit code (the caller reads its errors), except
    when it hit a limit: then ResourceLimitError ("``what`` ran out of memory under the 8 GiB
    limit ..." or "``what`` timed out after 600 s ..."). ``kwargs`` go to ``subprocess.run``.
    """
    limits = subprocess_limits(timeout_s)
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    tool = _PRLIMIT if limits.memory_bytes is not None else None
    argv = ([tool, f"--as={limits.memory_bytes}", "--", *cmd] if tool else list(cmd))
    with subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kwargs) as child:
        if tool is None:
            _cap_memory(child.pid, limits.memory_bytes)
        try:
            out, err = child.communicate(input, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise ResourceLimitError(f"{what} timed out after {limits.timeout_s:g} s (the time "
                                     f"limit; set {TIMEOUT_ENV} to change it)") from None
    proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    if proc.returncode != 0 and limits.memory_bytes is not None and _out_of_memory(proc):
        raise ResourceLimitError(f"{what} ran out of memory under the {limits.memory_text} "
                                 f"limit (set {MEMORY_ENV} to change it; 0 removes it)")
    return proc


# util-linux's prlimit sets the cap before it execs the command (so the program starts under it);
# without it the cap is set from this process just after the child starts.
_PRLIMIT = shutil.which("prlimit")


def _cap_memory(pid: int, memory_bytes: int | None) -> None:
    """Cap a just-started child's address space with ``resource.prlimit`` from this process
    (the fallback without the prlimit tool; the child runs uncapped for the moment before)."""
    if memory_bytes is None or resource is None or not hasattr(resource, "prlimit"):
        return
    try:
        resource.prlimit(pid, resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ProcessLookupError, PermissionError):  # already gone: nothing left to cap
        pass


def _out_of_memory(proc: subprocess.CompletedProcess) -> bool:
    """Did the child fail because an allocation was refused?"""
    err = proc.stderr
    text = err.decode(errors="replace") if isinstance(err, bytes) else str(err or "")
    return bool(_OOM_RE.search(text))
