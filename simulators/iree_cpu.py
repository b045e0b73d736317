"""Real measurement: compile MLIR kernels with IREE for ``llvm-cpu`` and time them on this CPU.

- :class:`KernelCompiler` runs ``iree-compile`` in a subprocess with a timeout and a memory cap
  (:mod:`mlsysgym.core.limits`) (``--iree-llvmcpu-target-cpu=host``) and caches the ``.vmfb``
  on disk by the content hash of (MLIR text, flags, compiler version and, as ``host`` code
  differs from CPU to CPU, :func:`mlsysgym.core.target.host_key`) under
  ``$MLSYSGYM_CACHE_DIR`` or ``~/.cache/mlsysgym/iree-cpu`` (compile errors are cached too,
  timeouts and out-of-memory failures under the cap are not).
- :func:`time_calls` times a callable: warm-up, samples of batched calls (each sample lasts at
  least ``min_sample_s``), median and spread, stopping early once the median is stable.
- :func:`measure` compiles, runs ``@kernel`` on random inputs with the ``local-sync`` driver
  (single thread), checks the result against the NumPy reference and times it.
- :class:`IreeCpuEvaluator` (``"iree-cpu"``) is the Evaluator: designs are kernel specs
  (``KernelSpec.to_design()`` dicts: kind, shape, dtype, ...); a kernel that fails to compile,
  times out or computes wrong numbers gives a failed row (``ok=False``, NaN times), never an
  exception.

Timings are wall-clock times of one invocation through the IREE VM (including its dispatch
overhead of a few microseconds); on a shared machine compare ratios measured side by side
rather than absolute times from different runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import Design, EvaluationError, Evaluator, Metrics
from mlsysgym.core.limits import ResourceLimitError, run_limited
from mlsysgym.core.target import host_key
from mlsysgym.ir.mlir_emit import EmittedKernel, KernelSpec, emit
from mlsysgym.ir.mlir_import import TARGET_FLAGS, cache_dir, compiler_version, iree_compile_path

__all__ = ["DEFAULT_FLAGS", "CompileResult", "IreeCpuEvaluator", "KernelCompiler",
           "Measurement", "Timing", "machine_description", "measure", "time_calls"]

DEFAULT_FLAGS: tuple[str, ...] = (*TARGET_FLAGS, "--mlir-disable-threading")  # same code, less contention
_TOL = {"f32": 1e-3, "f64": 1e-8, "f16": 3e-2}


@dataclass(frozen=True)
class CompileResult:
    """Outcome of one compile: the ``.vmfb`` path (None on failure), time, cache hit, error."""

    vmfb: Path | None
    compile_s: float
    cached: bool
    error: str = ""
    func: str = "kernel"

    @property
    def ok(self) -> bool:
        return self.vmfb is not None


@dataclass(frozen=True)
class Timing:
    """Per-call times of a timed callable: median, interquartile range, robust CV, samples."""

    median_us: float
    spread_us: float
    cv: float
    min_us: float
    reps: int
    calls_per_rep: int
    samples_us: tuple[float, ...] = field(repr=False, default=())


@dataclass(frozen=True)
class Measurement:
    """One measured kernel; ``ok`` is False when it failed (see ``error``) and times are NaN."""

    ok: bool
    runtime_us: float
    runtime_spread_us: float
    runtime_cv: float
    compile_s: float
    reps: int
    max_rel_err: float
    compile_cached: bool
    error: str = ""
    runtime_min_us: float = float("nan")

    def metrics(self) -> dict[str, float | bool]:
        return {"runtime_us": self.runtime_us, "runtime_spread_us": self.runtime_spread_us,
                "runtime_cv": self.runtime_cv, "compile_s": self.compile_s, "ok": self.ok}


def _failed(error: str, compile_s: float = float("nan"), cached: bool = False) -> Measurement:
    nan = float("nan")
    return Measurement(False, nan, nan, nan, compile_s, 0, nan, cached, " ".join(error.split())[:500])


class KernelCompiler:
    """Compiles MLIR text to an IREE ``.vmfb`` for llvm-cpu, with a timeout and a disk cache."""

    def __init__(self, flags: Sequence[str] = DEFAULT_FLAGS, extra_flags: Sequence[str] = (),
                 timeout_s: float = 60.0, cache_path: str | os.PathLike[str] | None = None) -> None:
        self.flags = tuple(flags) + tuple(extra_flags)
        self.timeout_s = float(timeout_s)
        self.cache_path = Path(cache_path) if cache_path else cache_dir("iree-cpu")
        self.cache_path.mkdir(parents=True, exist_ok=True)
        self.version = compiler_version()

    @classmethod
    def for_target(cls, target_cpu: str = "host", timeout_s: float = 60.0) -> KernelCompiler:
        """A compiler for codegen target ``target_cpu`` (``host``, ``x86-64-v3``, ...; see
        :func:`mlsysgym.core.target.target_flags`)."""
        from mlsysgym.core.target import target_flags

        return cls(flags=(*target_flags(target_cpu), "--mlir-disable-threading"),
                   timeout_s=timeout_s)

    def key(self, mlir: str) -> str:
        """Content hash of (MLIR text, flags, compiler version and, for ``host`` code, this
        CPU's :func:`~mlsysgym.core.target.host_key`)."""
        blob = json.dumps([mlir, list(self.flags), self.version, host_key(self.flags)])
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def _lookup(self, key: str) -> CompileResult | None:
        vmfb = self.cache_path / f"{key}.vmfb"
        if vmfb.is_file():
            return CompileResult(vmfb, 0.0, True)
        index = self.cache_path / f"{key}.json"
        if index.is_file():
            try:
                entry = json.loads(index.read_text())
                path = self.cache_path / entry["vmfb"]
                if path.is_file():
                    return CompileResult(path, 0.0, True, func=str(entry["func"]))
            except (OSError, ValueError, KeyError):
                pass
        err_file = self.cache_path / f"{key}.err"
        if err_file.is_file():
            return CompileResult(None, 0.0, True, err_file.read_text())
        return None

    def _run(self, mlir: str, out: Path, timeout_s: float) -> tuple[float, str]:
        """Run iree-compile; (seconds, error or "")."""
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
        cmd = [iree_compile_path(), "-", "-o", str(tmp), *self.flags]
        t0 = time.perf_counter()
        try:
            proc = run_limited(cmd, "iree-compile", input=mlir.encode(), timeout_s=timeout_s)
        except ResourceLimitError as e:  # a time or memory limit: a failed kernel, not a crash
            tmp.unlink(missing_ok=True)
            return time.perf_counter() - t0, f"compile failed: {e}"
        dt = time.perf_counter() - t0
        if proc.returncode != 0 or not tmp.is_file():
            tmp.unlink(missing_ok=True)
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            first = next((ln for ln in lines if "error:" in ln),
                         next((ln for ln in lines if "error" in ln.lower()),
                              lines[0] if lines else ""))
            return dt, f"compile failed: {first.strip() or f'exit code {proc.returncode}'}"
        os.replace(tmp, out)
        return dt, ""

    def compile(self, mlir: str) -> CompileResult:
        """Compile (or fetch from the cache); never raises on a bad kernel."""
        key = self.key(mlir)
        hit = self._lookup(key)
        if hit is not None:
            return hit
        vmfb = self.cache_path / f"{key}.vmfb"
        dt, error = self._run(mlir, vmfb, self.timeout_s)
        if error:
            if "timed out" not in error and "memory under" not in error:  # limits: not cached
                (self.cache_path / f"{key}.err").write_text(error[:2000])
            return CompileResult(None, dt, False, error)
        return CompileResult(vmfb, dt, False)

    def compile_many(self, texts: Sequence[str]) -> list[CompileResult]:
        """Compile several ``@kernel`` modules in one ``iree-compile`` run (functions renamed
        ``@k0, @k1, ...`` in one module; each still its own dispatch, so the code is the same
        as compiled alone). Amortizes the compiler's fixed start-up cost; ``compile_s`` of each
        is the batch time divided by its size. If the batch fails, every kernel is compiled
        alone, so one bad kernel fails only itself."""
        results: list[CompileResult | None] = [None] * len(texts)
        keys = [self.key(t) for t in texts]
        todo: list[int] = []
        for i, k in enumerate(keys):
            hit = self._lookup(k)
            if hit is not None:
                results[i] = hit
            elif keys.index(k) == i:
                todo.append(i)
        combined = _combine([texts[i] for i in todo]) if len(todo) > 1 else None
        if combined is not None:
            name = "batch-" + hashlib.sha256("".join(keys[i] for i in todo).encode()).hexdigest()[:24]
            vmfb = self.cache_path / f"{name}.vmfb"
            dt, error = self._run(combined, vmfb, self.timeout_s * len(todo))
            if not error:
                for j, i in enumerate(todo):
                    index = self.cache_path / f"{keys[i]}.json"
                    tmp = index.with_suffix(f".tmp{os.getpid()}")
                    tmp.write_text(json.dumps({"vmfb": vmfb.name, "func": f"k{j}"}))
                    os.replace(tmp, index)
                    results[i] = CompileResult(vmfb, dt / len(todo), False, func=f"k{j}")
        for i, k in enumerate(keys):
            if results[i] is None:
                first = keys.index(k)
                results[i] = results[first] if results[first] is not None and first != i \
                    else self.compile(texts[i])
        return [r for r in results if r is not None]


def _combine(texts: Sequence[str]) -> str | None:
    """One module holding each text's ``@kernel`` renamed ``@k<i>``; None if any text has
    other top-level symbols or does not parse."""
    try:
        from iree.compiler import ir
        from mlsysgym.ir.mlir_parse import context

        ctx = context()
        with ctx, ir.Location.unknown():
            out = ir.Module.create()
            for j, text in enumerate(texts):
                module = ir.Module.parse(text, ctx)
                ops = [op.operation for op in module.body.operations]
                if len(ops) != 1 or ops[0].name != "func.func":
                    return None
                clone = ops[0].clone(ip=ir.InsertionPoint(out.body))
                clone.attributes["sym_name"] = ir.StringAttr.get(f"k{j}")
            return str(out)
    except Exception:  # noqa: BLE001 - fall back to compiling one by one
        return None


def time_calls(fn: Callable[[], Any], warmup_s: float = 0.02, min_reps: int = 5,
               max_reps: int = 60, max_time_s: float = 0.5, min_sample_s: float = 2e-4,
               target_rse: float = 0.01) -> Timing:
    """Time ``fn()``: warm up (≥ 2 calls and ``warmup_s``), then take samples of batched calls
    (each sample ≥ ``min_sample_s``) until the relative standard error of the median is below
    ``target_rse`` (after ``min_reps``), ``max_reps`` samples or ``max_time_s``."""
    clock = time.perf_counter
    t0 = clock()
    calls = 0
    while calls < 2 or clock() - t0 < warmup_s:
        fn()
        calls += 1
        if clock() - t0 > max_time_s / 2:
            break
    per_call = (clock() - t0) / calls
    inner = max(1, int(min_sample_s / max(per_call, 1e-9)))
    samples: list[float] = []
    start = clock()
    while True:
        s = clock()
        for _ in range(inner):
            fn()
        samples.append((clock() - s) / inner)
        n = len(samples)
        if n >= max_reps:
            break
        if n >= min_reps:
            arr = np.asarray(samples)
            med = float(np.median(arr))
            mad = float(np.median(np.abs(arr - med))) * 1.4826
            if med > 0 and 1.2533 * mad / np.sqrt(n) / med <= target_rse:
                break
            if clock() - start > max_time_s:
                break
    arr = np.asarray(samples) * 1e6
    med = float(np.median(arr))
    q75, q25 = np.percentile(arr, [75, 25])
    mad = float(np.median(np.abs(arr - med))) * 1.4826
    return Timing(med, float(q75 - q25), mad / med if med > 0 else float("nan"),
                  float(arr.min()), len(samples), inner, tuple(float(x) for x in arr))


class Runner:
    """A loaded ``.vmfb`` on an IREE driver (``local-sync``: one thread, the default;
    ``local-task``: IREE's multi-threaded task system): run or time one function."""

    def __init__(self, vmfb: Path, func: str, driver: str = "local-sync") -> None:
        import iree.runtime as rt

        self.rt = rt
        self.config = rt.Config(driver)
        self.module = rt.VmModule.mmap(self.config.vm_instance, str(vmfb))
        self.ctx = rt.SystemContext(vm_modules=[self.module], config=self.config)
        self.fn = self.ctx.modules[self.module.name][func]
        self.vm_fn = self.module.lookup_function(func)

    def prepare(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        """A zero-argument callable that invokes the function on ``inputs`` (on the device)."""
        rt = self.rt
        dev = [rt.asdevicearray(self.config.device, x) for x in inputs]
        try:
            args = rt.VmVariantList(len(dev))
            for d in dev:
                args.push_ref(d._buffer_view)
            vm_ctx = self.ctx.vm_context
            vm_fn = self.vm_fn

            def call() -> Any:
                rets = rt.VmVariantList(1)
                vm_ctx.invoke(vm_fn, args, rets)
                return rets
            call()
            return call
        except Exception:  # noqa: BLE001 - fall back to the generic (slower) invoker
            fn = self.fn
            return lambda: fn(*dev)

    def run_all(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every result of the function on ``inputs``, as host arrays."""
        out = self.fn(*[self.rt.asdevicearray(self.config.device, x) for x in inputs])
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o.to_host() if hasattr(o, "to_host") else o) for o in outs]

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """The function's first result on ``inputs``."""
        return self.run_all(inputs)[0]


def measure(kernel: EmittedKernel | str, compiler: KernelCompiler | None = None, seed: int = 0,
            check: bool = True, input_shapes: Sequence[tuple[Sequence[int], str]] | None = None,
            compiled: CompileResult | None = None, **timing: Any) -> Measurement:
    """Compile, check and time one kernel; failures become a failed Measurement, never raise.

    ``kernel`` is an EmittedKernel (numerics checked against its NumPy reference) or MLIR text
    of a module with ``func.func @kernel`` (inputs from its signature, no numerics check).
    ``compiled`` is the result of an earlier ``compiler.compile(text)`` (e.g. done ahead in
    a background thread). ``timing`` goes to :func:`time_calls`.
    """
    compiler = compiler or KernelCompiler()
    text = kernel.mlir if isinstance(kernel, EmittedKernel) else kernel
    try:
        res = compiled if compiled is not None else compiler.compile(text)
    except OSError as e:
        return _failed(f"compile failed: {e}")
    if not res.ok:
        return _failed(res.error, res.compile_s, res.cached)
    try:
        runner = Runner(res.vmfb, res.func)  # type: ignore[arg-type]
        if isinstance(kernel, EmittedKernel):
            inputs = kernel.random_inputs(seed)
        else:
            inputs = _inputs_from_signature(text, seed) if input_shapes is None else [
                np.random.default_rng(seed).uniform(-1, 1, size=tuple(s)).astype(dt)
                for s, dt in input_shapes]
        err = float("nan")
        if check and isinstance(kernel, EmittedKernel):
            got = runner.run(inputs).astype(np.float64)
            want = kernel.reference(inputs).astype(np.float64)
            if got.shape != want.shape:
                return _failed(f"result shape {got.shape} != expected {want.shape}",
                               res.compile_s, res.cached)
            scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-6)
            err = float(np.max(np.abs(got - want)) / scale) if want.size else 0.0
            if not np.isfinite(err) or err > _TOL[kernel.spec.dtype]:
                return Measurement(False, float("nan"), float("nan"), float("nan"),
                                   res.compile_s, 0, err, res.cached,
                                   f"numerics: max relative error {err:.2e} vs NumPy")
        call = runner.prepare(inputs)
        t = time_calls(call, **timing)
    except Exception as e:  # noqa: BLE001 - any runtime failure is a failed row
        return _failed(f"run failed: {type(e).__name__}: {e}", res.compile_s, res.cached)
    return Measurement(True, t.median_us, t.spread_us, t.cv, res.compile_s, t.reps, err,
                       res.cached, runtime_min_us=t.min_us)


def _inputs_from_signature(text: str, seed: int) -> list[np.ndarray]:
    from iree.compiler import ir
    from mlsysgym.ir.mlir_parse import _parse_text, context

    np_types = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i32": np.int32,
                "i64": np.int64, "i8": np.int8}
    module = _parse_text(text, context())
    rng = np.random.default_rng(seed)
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and str(op.attributes["sym_name"]).strip('"') == "kernel":
            out = []
            for arg in op.regions[0].blocks[0].arguments:
                t = arg.type
                if not isinstance(t, ir.RankedTensorType) or not t.has_static_shape:
                    raise EvaluationError(f"kernel argument of type {t} is not a static tensor")
                dt = np_types.get(str(t.element_type), np.float32)
                out.append(rng.uniform(-1, 1, size=tuple(t.shape)).astype(dt))
            return out
    raise EvaluationError("module has no func.func @kernel")


def machine_description() -> dict[str, Any]:
    """CPU model, core count, load average, OS and IREE versions (for dataset rows), plus
    ``target_id`` and the full target ``fingerprint`` (:func:`mlsysgym.core.target.fingerprint`:
    ISA level and features, caches, mlsysgym version and commit, lock hash)."""
    from mlsysgym.core.target import fingerprint

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    fp = fingerprint()
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system(), "release": platform.release(),
            "load_avg_1m": round(load[0], 2), "compiler_version": compiler_version(),
            "driver": "local-sync", "target_id": fp["target_id"], "fingerprint": fp}


class IreeCpuEvaluator(Evaluator):
    """Measured runtime of MLIR kernels on this CPU (IREE llvm-cpu, local-sync, one thread).

    A design is a kernel spec dict (``KernelSpec.to_design()``: ``kind``, ``shape``,
    ``dtype``, optional ``op``/``stride``/``dilation``/``reduce_dims``) or ``{"mlir": TEXT}``
    (a module with ``func.func @kernel``; no numerics check). The workload is not used (pass
    a label such as ``"kernels"``). Metrics: ``runtime_us`` (median), ``runtime_spread_us``
    (interquartile range), ``runtime_cv`` (robust coefficient of variation), ``compile_s``
    and ``ok``. ``last_measurements`` holds the full records (errors) of the last batch.
    """

    name = "iree-cpu"
    version = "1"
    metric_names = ("runtime_us", "runtime_spread_us", "runtime_cv", "compile_s", "ok")

    def __init__(self, extra_flags: Sequence[str] = (), timeout_s: float = 60.0,
                 cache_path: str | os.PathLike[str] | None = None, check: bool = True,
                 timing: Mapping[str, Any] | None = None, cache_size: int = 100_000,
                 seed: int = 0) -> None:
        super().__init__(cache_size=cache_size, seed=seed)
        self.compiler = KernelCompiler(extra_flags=extra_flags, timeout_s=timeout_s,
                                       cache_path=cache_path)
        self.check = check
        self.timing = dict(timing or {})
        self.last_measurements: list[Measurement] = []

    @property
    def id(self) -> str:
        """``name@version`` plus a short hash of the compile flags and compiler version."""
        h = hashlib.sha256(json.dumps([list(self.compiler.flags),
                                       self.compiler.version]).encode()).hexdigest()[:8]
        return f"{self.name}@{self.version}+{h}"

    def measure_design(self, design: Design) -> Measurement:
        """Measure one design (see class doc); never raises for a bad kernel."""
        try:
            if "mlir" in design:
                return measure(str(design["mlir"]), self.compiler, seed=self.seed,
                               check=False, **self.timing)
            kernel = emit(KernelSpec.from_design(design))
        except Exception as e:  # noqa: BLE001 - bad spec or MLIR: a failed row
            return _failed(f"bad kernel design: {e}")
        return measure(kernel, self.compiler, seed=self.seed, check=self.check, **self.timing)

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        ms = [self.measure_design(d) for d in designs]
        self.last_measurements = ms
        cols = {m: [x.metrics()[m] for x in ms] for m in self.metric_names}
        out: Metrics = {m: np.asarray(v, dtype=np.float64) for m, v in cols.items() if m != "ok"}
        out["ok"] = np.asarray(cols["ok"], dtype=bool)
        return {m: out[m] for m in self.metric_names}


def measurement_dict(m: Measurement) -> dict[str, Any]:
    """A Measurement as a plain dict."""
    return asdict(m)
