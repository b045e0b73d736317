"""Pictures of what the envs do, drawn with matplotlib on its Agg canvas (no display needed).

Every env takes ``render_mode`` ∈ ``metadata["render_modes"]`` (None by default):
``"rgb_array"`` makes ``render()`` return the picture as an ``(H, W, 3)`` uint8 array;
``"human"`` shows it in a matplotlib window, redrawn after every ``reset`` and ``step``
(``render()`` returns None; under a non-interactive backend such as Agg nothing is displayed).
An unknown mode is a one-line :class:`~mlsysgym.envs.design_env.EnvConfigError`.

The pictures (one function each, taking plain data, so they can be drawn outside an env too):

- :func:`design_figure`: a design as a bar per parameter (its level in the space) and the
  episode's rewards (any DesignEnv);
- :func:`accelerator_figure`: the PE array, its SRAMs and bandwidth, and the utilization of
  every layer of the workload on that design, with each layer's share of the latency;
- :func:`dram_figure`: the DRAM command timeline: every ACTIVATE per bank over time, the
  refreshes, and each request's latency against its arrival;
- :func:`memory_map_figure`: mallocGame's memory map, fast-memory offset × op (each fast or
  prefetched buffer a rectangle over its residency), and the bytes live in fast and slow
  memory over time;
- :func:`gantt_figure`: a schedule as a Gantt chart, one row per PE.

LLMServing-v0 (and any other DesignEnv) draws :func:`design_figure`.

``python -m mlsysgym.envs.render [OUT_DIR]`` writes one PNG of each env's picture (default
``experiments/results/renders/``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.envs.design_env import EnvConfigError

__all__ = [
    "RENDER_MODES", "HumanWindow", "accelerator_figure", "check_render_mode", "design_figure",
    "dram_design_figure", "dram_figure", "gantt_figure", "memory_map_figure", "new_figure", "output", "to_rgb",
    "write_examples",
]

RENDER_MODES = ("rgb_array", "human")
"""The picture modes every env supports (some add ``"ansi"``, a line of text)."""

_FAST, _PREFETCH, _SLOW = "#1f77b4", "#ff7f0e", "#b0b0b0"


def check_render_mode(render_mode: str | None, modes: Sequence[str]) -> None:
    """EnvConfigError (one line) unless ``render_mode`` is None or one of ``modes``."""
    if render_mode is not None and render_mode not in modes:
        raise EnvConfigError(f"render_mode must be None or one of {list(modes)}, "
                             f"got {render_mode!r}")


def new_figure(width: float = 9.0, height: float = 4.5) -> Any:
    """A matplotlib Figure on an Agg canvas (not registered with pyplot: no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_rgb(fig: Any) -> np.ndarray:
    """The figure's pixels, ``(H, W, 3)`` uint8."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


class HumanWindow:
    """A pyplot window showing the latest picture (``render_mode="human"``)."""

    def __init__(self) -> None:
        self.fig: Any = None
        self.image: Any = None

    def show(self, rgb: np.ndarray, fps: float = 4.0) -> None:
        """Draw ``rgb`` in the window (created on first use); pause ``1/fps`` s for the GUI
        event loop when the backend is interactive."""
        import matplotlib
        import matplotlib.pyplot as plt
        from matplotlib.backends import BackendFilter, backend_registry

        if self.fig is None or not plt.fignum_exists(self.fig.number):
            self.fig, ax = plt.subplots(figsize=(rgb.shape[1] / 80, rgb.shape[0] / 80), dpi=80)
            ax.set_axis_off()
            self.image = ax.imshow(rgb)
        else:
            self.image.set_data(rgb)
        self.fig.canvas.draw_idle()
        interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
        if matplotlib.get_backend().lower() in {b.lower() for b in interactive}:
            plt.pause(1.0 / fps)

    def close(self) -> None:
        """Close the window if it is open."""
        if self.fig is not None:
            import matplotlib.pyplot as plt

            plt.close(self.fig)
            self.fig = self.image = None


def output(env: Any, fig: Any) -> np.ndarray | None:
    """What ``env.render()`` returns for ``fig``: its pixels (``rgb_array``), or None after
    showing it in the env's window (``human``)."""
    rgb = to_rgb(fig)
    if env.render_mode != "human":
        return rgb
    window = getattr(env, "_window", None)
    if window is None:
        window = env._window = HumanWindow()
    window.show(rgb, float(env.metadata.get("render_fps", 4)))
    return None


def close_window(env: Any) -> None:
    """Close the env's human-mode window, if any (for ``env.close()``)."""
    window = getattr(env, "_window", None)
    if window is not None:
        window.close()


# ---- pictures ---------------------------------------------------------------------------------
def design_figure(names: Sequence[str], unit: np.ndarray, labels: Sequence[str],
                  rewards: Sequence[float], title: str) -> Any:
    """A design (``unit``: each parameter's position in [0, 1], −1 if not chosen yet; ``labels``
    its values as text) and the rewards of the episode so far."""
    fig = new_figure()
    ax, ar = fig.subplots(1, 2, width_ratios=[3, 2])
    y = np.arange(len(names))
    chosen = np.asarray(unit) >= 0
    ax.barh(y, np.where(chosen, np.asarray(unit), 0.0), color=np.where(chosen, _FAST, _SLOW))
    for i, text in enumerate(labels):
        ax.text(0.02, i, text, va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("position in the parameter's range")
    ax.set_title("design", fontsize=10)
    if len(rewards):
        ar.plot(np.arange(1, len(rewards) + 1), rewards, marker="o", ms=3)
    ar.set_xlabel("step")
    ar.set_ylabel("reward")
    ar.set_title("rewards this episode", fontsize=10)
    fig.suptitle(title, fontsize=10)
    return fig


def accelerator_figure(design: Mapping[str, Any], layers: Any, metrics: Mapping[str, float],
                       title: str) -> Any:
    """The accelerator ``design`` (PE array to scale, SRAM sizes, DRAM bandwidth) and, from
    ``layers`` (:func:`mlsysgym.simulators.accelerator.layer_table`), every layer's PE
    utilization and share of the latency."""
    fig = new_figure(10, 4.5)
    a_arr, a_mem, a_util = fig.subplots(1, 3, width_ratios=[1.1, 1.2, 4])
    rows, cols = int(design["rows"]), int(design["cols"])
    side = max(rows, cols)
    a_arr.add_patch(_rect(0, 0, cols / side, rows / side, _FAST))
    a_arr.set_xlim(0, 1)
    a_arr.set_ylim(0, 1)
    a_arr.set_aspect("equal")
    a_arr.set_xticks([])
    a_arr.set_yticks([])
    a_arr.set_title(f"{rows}×{cols} PEs, {design['dataflow']}", fontsize=9)
    mem = {k: float(design[k]) for k in ("ifmap_kb", "filter_kb", "ofmap_kb")}
    a_mem.bar(range(3), list(mem.values()), color=_FAST)
    a_mem.set_yscale("log")
    a_mem.set_xticks(range(3), ["ifmap", "filter", "ofmap"], fontsize=8)
    a_mem.set_ylabel("SRAM (KB)")
    a_mem.set_title(f"DRAM {design['bandwidth']:g} words/cycle, {design['word_bytes']} B",
                    fontsize=9)
    util = np.asarray(layers["utilization"], dtype=float)
    share = np.asarray(layers["latency_ms"], dtype=float)
    share = share / max(share.sum(), 1e-30)
    x = np.arange(len(util))
    gemm = np.asarray(layers["macs"], dtype=float) > 0
    a_util.bar(x, util, color=np.where(gemm, _FAST, _SLOW), width=0.9, label="utilization")
    a_util.plot(x, share, "o-", ms=3, lw=1, color=_PREFETCH, label="share of latency")
    a_util.set_ylim(0, 1.02)
    a_util.set_xlabel("layer (grey: no MACs)")
    a_util.set_ylabel("PE utilization")
    a_util.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"{title}: latency {metrics.get('latency_ms', np.nan):.3g} ms, energy "
                 f"{metrics.get('energy_uj', np.nan):.3g} µJ, area "
                 f"{metrics.get('area_mm2', np.nan):.3g} mm², mean utilization "
                 f"{metrics.get('utilization', np.nan):.2f}", fontsize=10)
    return fig


def dram_figure(result: Any, n_banks: int, tck_ns: float, arrival_cycles: np.ndarray,
                title: str) -> Any:
    """A simulated controller (:class:`mlsysgym.simulators.dram.DramResult`): every ACTIVATE per
    bank over time (a row opened), all refreshes, and each request's latency."""
    fig = new_figure(10, 5)
    a_cmd, a_lat = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    us = tck_ns / 1000.0
    banks = np.asarray(result.act_banks)
    a_cmd.scatter(np.asarray(result.act_cycles) * us, banks, s=40, marker="|", color=_FAST,
                  label=f"ACTIVATE ({result.activate_count})")
    for i, t in enumerate(np.asarray(result.refresh_cycles) * us):
        a_cmd.axvline(t, color=_PREFETCH, lw=0.6, alpha=0.6,
                      label=f"REFRESH ({result.refresh_count})" if i == 0 else None)
    a_cmd.set_ylim(-0.5, n_banks - 0.5)
    a_cmd.set_ylabel("bank")
    a_cmd.legend(fontsize=8, loc="upper right")
    lat = np.asarray(result.latency_cycles) * tck_ns
    a_lat.scatter(np.asarray(arrival_cycles) * us, lat, s=3, color=_SLOW)
    a_lat.axhline(result.avg_latency_ns, color=_FAST, lw=1,
                  label=f"mean {result.avg_latency_ns:.1f} ns")
    a_lat.set_yscale("log")
    a_lat.set_ylabel("latency (ns)")
    a_lat.set_xlabel("time (µs)")
    a_lat.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"{title}: row-hit rate {result.row_hit_rate:.2f}, bandwidth "
                 f"{result.bandwidth_gbps:.2f} GB/s, power {result.power_mw:.0f} mW", fontsize=10)
    return fig


def dram_design_figure(trace: Any, design: Mapping[str, Any], evaluator: Any, title: str) -> Any:
    """Simulate ``design`` on ``trace`` with the evaluator's device, address mapping and
    controller settings (a DramSimulator's, else the defaults) and draw :func:`dram_figure`."""
    from mlsysgym.simulators.dram import DEFAULT_MAPPING, prepare_trace, simulate
    from mlsysgym.simulators.dram_timing import MT40A1G8_083E

    device = getattr(evaluator, "device", MT40A1G8_083E)
    kw = {k: getattr(evaluator, k) for k in ("mapping", "settings") if hasattr(evaluator, k)}
    prepared = prepare_trace(trace, device, kw.get("mapping", DEFAULT_MAPPING))
    result = simulate(prepared, design, device, **kw)
    return dram_figure(result, device.org.total_banks, device.timing.tck_ns, prepared.arrival,
                       title)


def memory_map_figure(problem: Any, mode: np.ndarray, offset: np.ndarray, decided: int,
                      time_us: float, title: str) -> Any:
    """mallocGame: each buffer in fast memory as a rectangle (op × offset) over its residency
    (blue: fast for its whole life; orange: prefetched, from its copy window on), the capacity,
    and the bytes live in fast and in slow memory at each op."""
    fig = new_figure(10, 5)
    a_map, a_live = fig.subplots(1, 2, width_ratios=[3, 2])
    cap_mb = problem.capacity_bytes / 2**20
    size_mb = problem.size / 2**20
    fast = np.flatnonzero(mode == 1)
    pf = np.flatnonzero(mode == 2)
    for idx, color in ((fast, _FAST), (pf, _PREFETCH)):
        first = problem.pf_start[idx] if color == _PREFETCH else problem.start[idx]
        for b, t0 in zip(idx, first):
            a_map.add_patch(_rect(t0, offset[b] / 2**20, problem.end[b] + 1 - t0, size_mb[b],
                                  color))
    a_map.axhline(cap_mb, color="k", lw=0.8)
    a_map.set_xlim(0, problem.n_ops)
    a_map.set_ylim(0, cap_mb * 1.05)
    a_map.set_xlabel("op")
    a_map.set_ylabel("fast-memory offset (MiB)")
    a_map.set_title(f"fast memory ({len(fast)} fast, {len(pf)} prefetched)", fontsize=9)
    ops = np.arange(problem.n_ops)
    live = (problem.start[:, None] <= ops) & (ops <= problem.end[:, None])
    first_fast = np.where(mode == 2, problem.pf_start, problem.start)[:, None]  # residency
    in_fast = (mode > 0)[:, None] & (first_fast <= ops) & (ops <= problem.end[:, None])
    a_live.stackplot(ops, in_fast.T @ size_mb, (live & ~in_fast).T @ size_mb,
                     colors=[_FAST, _SLOW], labels=["fast", "slow"])
    a_live.axhline(cap_mb, color="k", lw=0.8, label="capacity")
    a_live.set_xlabel("op")
    a_live.set_ylabel("live MiB")
    a_live.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"{title}: {decided}/{problem.n_buffers} buffers decided, time "
                 f"{time_us:.4g} µs (all slow {problem.all_slow_time_us:.4g} µs)", fontsize=10)
    return fig


def gantt_figure(pe_names: Sequence[str], assign: np.ndarray, start: np.ndarray,
                 finish: np.ndarray, title: str, job_of: np.ndarray | None = None) -> Any:
    """A schedule as a Gantt chart: one row per PE, one bar per placed op (``assign[i] >= 0``),
    coloured by job when ``job_of`` is given."""
    import matplotlib

    fig = new_figure(10, 1.2 + 0.5 * len(pe_names))
    ax = fig.subplots()
    placed = np.flatnonzero(np.asarray(assign) >= 0)
    colors = matplotlib.colormaps["tab10"].colors
    for i in placed:
        c = colors[int(job_of[i]) % 10] if job_of is not None else colors[int(i) % 10]
        ax.barh(int(assign[i]), finish[i] - start[i], left=start[i], height=0.7, color=c,
                edgecolor="k", linewidth=0.2)
    ax.set_yticks(range(len(pe_names)), pe_names)
    ax.invert_yaxis()
    ax.set_xlabel("time (µs)")
    makespan = float(np.max(np.asarray(finish)[placed])) if placed.size else 0.0
    ax.set_title(f"{title}: {placed.size} ops placed, makespan {makespan:.1f} µs", fontsize=10)
    return fig


def _rect(x: float, y: float, w: float, h: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=color, edgecolor="k", linewidth=0.3, alpha=0.85)


# ---- the example pictures ------------------------------------------------------------------------
def write_examples(out_dir: str | Path = "experiments/results/renders") -> list[Path]:
    """One PNG per env: a few steps of a fixed policy on a small workload, then
    ``render()`` (see the module docstring). Returns the files written."""
    import gymnasium as gym
    from matplotlib.image import imsave

    import mlsysgym  # noqa: F401  (registers the ids)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("accelerator", "mlsysgym/Accelerator-v0", {"model": "resnet18"}),
        ("dram", "mlsysgym/DRAM-v0", {"workload": "random", "max_requests": 2000}),
        ("malloc_game", "mlsysgym/MallocGame-v0", {"workload": "resnet18",
                                                   "prefetch_window": 2}),
        ("kernel_scheduling", "mlsysgym/KernelScheduling-v0", {"workload": "resnet18"}),
        ("kernel_scheduling_stream", "mlsysgym/KernelSchedulingStream-v0",
         {"models": ("alexnet", "resnet18"), "n_jobs": 3, "n_streams": 1}),
        ("llm_serving", "mlsysgym/LLMServing-v0", {"requests": 50}),
    ]
    written = []
    for name, env_id, kwargs in runs:
        env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        _play(env, seed=0)
        path = out / f"{name}.png"
        imsave(path, env.render())
        env.close()
        written.append(path)
    return written


def _play(env: Any, seed: int) -> None:
    """An episode of a simple policy: 20 random designs (design envs); best fit in fast memory
    when it fits, else a prefetch when that fits (mallocGame); the valid (op, PE) pair that would finish first ignoring
    transfers (scheduling)."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    base = env.unwrapped
    for _ in range(20 if hasattr(base, "space") else 100_000):
        if hasattr(base, "space"):
            action = env.action_space.sample()
        elif hasattr(base, "n_offsets"):  # fast if it fits, else prefetched if that fits
            mask, pf = base.action_masks(), 1 + base.n_offsets
            action = 1 if mask[1] else pf if base.prefetch and mask[pf] else 0
        else:
            valid = np.flatnonzero(base.action_masks())
            p = base.n_pes
            ops = obs["window"][valid // p]
            dur = obs["ops"][ops, 10 + valid % p]  # time of each op on each PE (÷ LB_0)
            action = int(valid[np.argmin(obs["pes"][valid % p, 0] + dur)])
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break


if __name__ == "__main__":
    for p in write_examples(*sys.argv[1:2]):
        print(p)
