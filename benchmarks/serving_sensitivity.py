"""Sensitivity of the serving simulator's fidelity to one engine-overhead value (issue #22).

Runs ``benchmarks/serving_validate.py`` once per value of one field of one engine preset
(default: ``eager_op_s`` of ``vllm-v0.6-server``, the per-op CPU dispatch time of vLLM v0.6's
eager iterations) over the measured validation set, and writes the median absolute errors
per value to ``benchmarks/results/serving_sensitivity.md`` (+ ``.json``, ``.png``,
``.provenance.json``). The set is only measured, never fitted: this shows how far a
published constant may be off before a fidelity goal is lost.

Usage::

    .venv/bin/python benchmarks/serving_sensitivity.py [--field F] [--preset P] [--values V,V,...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import serving_validate as sv

OUT = Path("benchmarks/results/serving_sensitivity")  # default --out, under the working directory
VALUES = "0,20e-6,25e-6,28e-6,30e-6,31e-6,33e-6,35e-6,37.5e-6,40e-6,45e-6"
FAMILIES = ("TTFT", "TPOT", "throughput", "E2E")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--field", default="eager_op_s")
    ap.add_argument("--preset", default="vllm-v0.6-server")
    ap.add_argument("--values", default=VALUES, help="comma-separated values of the field")
    ap.add_argument("--data", type=Path, default=sv.DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    values = [v.strip() for v in args.values.split(",") if v.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, v in enumerate(values):
            out = Path(tmp) / f"v{i}"
            log = io.StringIO()
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                rc = sv.main(["--data", str(args.data), "--out", str(out),
                              "--set", f"{args.preset}:{args.field}={v}"])
            if rc:
                print(log.getvalue().strip().splitlines()[-1], file=sys.stderr)
                return rc
            res = json.loads(out.with_suffix(".json").read_text())
            rows.append({"value": float(v), **res["median_abs_err_pct"], "all": res["all"]})
            print(f"{args.field}={v}: TTFT {rows[-1]['TTFT']:.1f} %, all {res['all']:.1f} %",
                  flush=True)
    write_report(rows, args)
    return 0


def write_report(rows: list[dict[str, float]], args: argparse.Namespace) -> None:
    """The medians per value as a Markdown table, JSON, a plot and the run's provenance."""
    from mlsysgym.experiments.report import stamp_markdown, write_provenance

    cols = [c for c in (*FAMILIES, "all") if c in rows[0]]
    lines = [f"# Serving fidelity vs `{args.field}` of `{args.preset}`", "",
             ("Median absolute error (%) over the measured validation set "
             f"(`{args.data.name}`, read from shared/, nothing fitted) per value; every other "
             "setting as in `benchmarks/serving_validate.py`. Script: "
             "`benchmarks/serving_sensitivity.py`."), "",
             f"| {args.field} | " + " | ".join(cols) + " |",
             "|---:|" + "---:|" * len(cols)]
    lines += [f"| {r['value']:g} | " + " | ".join(f"{r[c]:.1f}" for c in cols) + " |"
              for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(stamp_markdown("\n".join(lines) + "\n"))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"field": args.field, "preset": args.preset, "rows": rows}, indent=1))
    write_provenance(args.out.with_suffix(".provenance.json"),
                     script="benchmarks/serving_sensitivity.py", evaluator="serving@1",
                     data=str(args.data))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = [r["value"] for r in rows]
    for c in cols:
        ax.plot(x, [r[c] for r in rows], "o-", label=c)
    ax.axhline(15, color="k", ls="--", lw=0.8, label="goal 15 %")
    ax.set_xlabel(f"{args.field} of {args.preset}")
    ax.set_ylabel("median |error| (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
