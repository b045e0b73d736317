"""Where a result was made: the target fingerprint (CPU, ISA, caches, versions, compile target).

One function, :func:`fingerprint`, used everywhere a measurement, dataset, cost model or
results file records its origin (``mlsysgym info`` prints it). It describes

- the **machine**: CPU vendor, model name, family/model/stepping, the ISA features that matter
  to code generation, cache sizes and the cores this process may use (Linux ``/proc`` and
  ``/sys``; other systems give what ``platform`` knows);
- the **codegen target**: the ``--iree-llvmcpu-target-cpu`` value (``host`` or a named CPU or
  x86-64 level such as ``x86-64-v3``) and what it means here: the effective ISA level, vector
  width and features (``host`` resolves to this machine's; a named target to its own, which
  must be a subset of the machine's to run);
- the **software**: Python, mlsysgym and its git commit, the lock file's hash, IREE, torch,
  ray, onnxruntime versions (read from package metadata, nothing imported).

``target_id`` hashes what decides the generated code and its speed (CPU identity, effective
ISA, IREE version, compile flags): two rows with the same ``target_id`` are comparable.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlsysgym.core.errors import MlsysgymError

__all__ = [
    "CODEGEN_FLAGS",
    "ISA_LEVELS",
    "CpuInfo",
    "TargetError",
    "TargetIsa",
    "cpu_info",
    "cpu_seconds",
    "fingerprint",
    "host_key",
    "lock_hash",
    "provenance",
    "target_flags",
    "target_id",
    "target_isa",
]

# x86-64 micro-architecture levels (psABI): features each level adds to the previous one.
ISA_LEVELS: dict[str, tuple[str, ...]] = {
    "x86-64": ("sse", "sse2"),
    "x86-64-v2": ("ssse3", "sse4_1", "sse4_2", "popcnt", "cx16"),
    "x86-64-v3": ("avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "lzcnt"),
    "x86-64-v4": ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"),
}
# Features reported beyond the levels (they change what LLVM may emit).
EXTRA_FEATURES = ("avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512vbmi", "avx_vnni",
                  "amx_tile", "amx_bf16", "amx_int8")
# /proc/cpuinfo spells some flags differently from the psABI names.
_ALIASES = {"sse4_1": ("sse4_1",), "sse4_2": ("sse4_2",), "bmi1": ("bmi1",), "lzcnt": ("abm", "lzcnt"),
            "avx512vbmi": ("avx512vbmi", "avx512_vbmi")}
# Named LLVM CPUs this project compiles for (their ISA level; extras as LLVM enables them).
NAMED_TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86-64": ("x86-64", ()), "x86-64-v2": ("x86-64-v2", ()), "x86-64-v3": ("x86-64-v3", ()),
    "x86-64-v4": ("x86-64-v4", ()), "haswell": ("x86-64-v3", ()), "znver2": ("x86-64-v3", ()),
    "znver3": ("x86-64-v3", ()), "skylake-avx512": ("x86-64-v4", ()),
    "icelake-server": ("x86-64-v4", ("avx512_vnni", "avx512vbmi")),
    "znver4": ("x86-64-v4", ("avx512_vnni", "avx512_bf16", "avx512vbmi")),
    "sapphirerapids": ("x86-64-v4", ("avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512vbmi",
                                     "amx_tile", "amx_bf16", "amx_int8")),
}
# Flags of every llvm-cpu compile; the target CPU is added by :func:`target_flags`.
CODEGEN_FLAGS: tuple[str, ...] = ("--iree-hal-target-device=local",
                                  "--iree-hal-local-target-device-backends=llvm-cpu")


class TargetError(MlsysgymError):
    """A codegen target this machine cannot run, or one this project does not know."""


@dataclass(frozen=True)
class CpuInfo:
    """This machine's CPU: identity, ISA features (psABI names), caches (KiB), usable cores."""

    vendor: str
    model_name: str
    family: int
    model: int
    stepping: int
    features: tuple[str, ...]
    l1d_kib: int
    l2_kib: int
    l3_kib: int
    cores: int
    arch: str


@dataclass(frozen=True)
class TargetIsa:
    """What a codegen target means: its name, x86-64 level, vector width and features."""

    cpu: str
    level: str
    vector_bits: int
    features: tuple[str, ...]


def _proc_cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, val = line.partition(":")
        out.setdefault(key.strip(), val.strip())
    return out


def _cache_kib(level: int, kind: str) -> int:
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for d in sorted(base.glob("index*")) if base.is_dir() else []:
        try:
            if int((d / "level").read_text()) == level and (d / "type").read_text().strip() in kind:
                size = (d / "size").read_text().strip().upper()
                mult = 1024 if size.endswith("M") else 1
                return int(size.rstrip("KMB")) * mult
        except (OSError, ValueError):
            continue
    return 0


def _normalize_flags(raw: Iterable[str]) -> frozenset[str]:
    flags = set(raw)
    for name, aliases in _ALIASES.items():
        if flags.intersection(aliases):
            flags.add(name)
    if "pni" in flags:  # SSE3 is spelled pni
        flags.add("sse3")
    return frozenset(flags)


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's CPU (cached for the process)."""
    info = _proc_cpuinfo()
    flags = _normalize_flags(info.get("flags", "").split())
    known = [f for lvl in ISA_LEVELS.values() for f in lvl] + list(EXTRA_FEATURES)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1

    def num(key: str) -> int:
        try:
            return int(info.get(key, "-1"))
        except ValueError:
            return -1
    return CpuInfo(vendor=info.get("vendor_id", platform.system()),
                   model_name=info.get("model name", platform.processor() or platform.machine()),
                   family=num("cpu family"), model=num("model"), stepping=num("stepping"),
                   features=tuple(f for f in known if f in flags),
                   l1d_kib=_cache_kib(1, "Data"), l2_kib=_cache_kib(2, "Unified"),
                   l3_kib=_cache_kib(3, "Unified"), cores=cores, arch=platform.machine())


def _level_of(features: Iterable[str]) -> str:
    have = set(features)
    level = "x86-64"
    for name in ("x86-64-v2", "x86-64-v3", "x86-64-v4"):
        if not set(ISA_LEVELS[name]) <= have:
            break
        level = name
    return level


def _vector_bits(level: str) -> int:
    return {"x86-64-v4": 512, "x86-64-v3": 256}.get(level, 128)


def target_isa(cpu: str = "host") -> TargetIsa:
    """The ISA of a codegen target (``host`` or a name of :data:`NAMED_TARGETS`); raises
    :class:`TargetError` for an unknown name or one this machine cannot run."""
    host = cpu_info()
    if cpu == "host":
        level = _level_of(host.features)
        return TargetIsa("host", level, _vector_bits(level), host.features)
    if cpu not in NAMED_TARGETS:
        raise TargetError(f"unknown target cpu {cpu!r}; use host or one of "
                          f"{', '.join(NAMED_TARGETS)}")
    level, extra = NAMED_TARGETS[cpu]
    names = list(ISA_LEVELS)
    feats = [f for lvl in names[:names.index(level) + 1] for f in ISA_LEVELS[lvl]] + list(extra)
    missing = [f for f in feats if f not in host.features and f not in ISA_LEVELS["x86-64"]]
    if host.arch in ("x86_64", "AMD64") and missing:
        raise TargetError(f"this CPU cannot run code for {cpu}: it lacks {', '.join(missing)} "
                          f"(its level is {_level_of(host.features)})")
    return TargetIsa(cpu, level, _vector_bits(level), tuple(feats))


def target_flags(cpu: str = "host") -> tuple[str, ...]:
    """The llvm-cpu compile flags for codegen target ``cpu``."""
    target_isa(cpu)  # validate
    return (*CODEGEN_FLAGS, f"--iree-llvmcpu-target-cpu={cpu}")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@functools.cache
def _git_commit() -> str | None:
    root = _repo_root()
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return (sha + ("-dirty" if dirty.stdout.strip() else "")) if sha else None


def lock_hash() -> str | None:
    """sha256 (16 hex) of the repository's ``requirements.lock``, or None when not in a checkout."""
    path = _repo_root() / "requirements.lock"
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def software() -> dict[str, Any]:
    """Versions of Python, mlsysgym (+ commit, lock hash) and the libraries results depend on."""
    from mlsysgym import __version__

    return {"python": platform.python_version(), "mlsysgym": __version__,
            "commit": _git_commit(), "lock": lock_hash(),
            "iree_compiler": _version("iree-base-compiler"),
            "iree_runtime": _version("iree-base-runtime"), "torch": _version("torch"),
            "ray": _version("ray"), "onnxruntime": _version("onnxruntime"),
            "numpy": _version("numpy"), "os": f"{platform.system()} {platform.release()}"}


@functools.cache
def target_id(target_cpu: str = "host", extra_flags: tuple[str, ...] = ()) -> str:
    """The short id of what decides the generated code and its speed: CPU identity, the
    target's ISA, IREE's version and the compile flags (cached for the process)."""
    cpu, isa = cpu_info(), target_isa(target_cpu)
    key = [cpu.vendor, cpu.model_name, cpu.family, cpu.model, isa.level, list(isa.features),
           _version("iree-base-compiler"), [*target_flags(target_cpu), *extra_flags]]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]


def host_key(flags: Iterable[str]) -> str | None:
    """For the cache key of code compiled with ``flags``: this machine's :func:`target_id` when
    they compile for ``host`` (``--iree-llvmcpu-target-cpu=host``), whose code differs from CPU
    to CPU; None for a named target, whose code is the same everywhere. A cache that machines
    share (a network home directory, a restored CI cache) then never hands one CPU code built
    for another's ISA (AVX-512 code on an AVX2 CPU dies of an illegal instruction)."""
    return target_id("host") if "--iree-llvmcpu-target-cpu=host" in flags else None


def fingerprint(target_cpu: str = "host", extra_flags: Iterable[str] = ()) -> dict[str, Any]:
    """The full fingerprint (JSON-able): ``target_id``, ``machine``, ``target``, ``flags``,
    ``software``. ``target_cpu`` is the ``--iree-llvmcpu-target-cpu`` value compiled for."""
    cpu = cpu_info()
    extra = tuple(extra_flags)
    return {"target_id": target_id(target_cpu, extra),
            "machine": asdict(cpu) | {"isa_level": _level_of(cpu.features)},
            "target": asdict(target_isa(target_cpu)),
            "flags": [*target_flags(target_cpu), *extra], "software": software()}


def provenance(**extra: Any) -> dict[str, Any]:
    """What every results file records: the host fingerprint plus ``extra`` (evaluator ids,
    seed, command ...)."""
    fp = fingerprint()
    return {"fingerprint": fp, **extra, "python_argv": list(sys.argv)}


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its finished children: the cost of
    a training run whose labelling ran in worker processes."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
