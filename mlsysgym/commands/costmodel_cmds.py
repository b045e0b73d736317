"""``mlsysgym costmodel train|eval|predict``: fit a cost model on a logged dataset, score it,
and query a saved one (ONNX Runtime only)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from mlsysgym.commands.argtypes import positive_int, seed
from mlsysgym.commands.common import add_json, add_out, print_json, say, slow_step


def _csv(s: str | None) -> list[str]:
    return [x.strip() for x in (s or "").split(",") if x.strip()]


def register(group) -> None:
    """Add ``costmodel train``, ``costmodel eval`` and ``costmodel predict``."""
    g = group("costmodel")
    t = g.add_parser("train", help="fit a cost model on a dataset directory and save it")
    t.add_argument("--data", required=True, help="dataset directory (Parquet parts of DatasetLogger)")
    add_out(t, "directory to save model.onnx + metadata.json", metavar="DIR", required=True)
    t.add_argument("--kind", choices=("lightgbm", "mlp"), default="lightgbm", help="model family")
    t.add_argument("--targets", required=True, help="comma-separated metric columns, e.g. latency_ms,energy_uj")
    t.add_argument("--features", default=None,
                   help="comma-separated feature columns (default: the dataset's design columns)")
    t.add_argument("--members", type=positive_int, default=None, help="ensemble size (uncertainty when > 1)")
    t.add_argument("--test-fraction", type=float, default=0.2, help="rows held out for the report")
    t.add_argument("--report", default=None, help="write a report (plots, metrics) to this folder")
    t.add_argument("--group", default="workload_id", help="column to break errors down by")
    t.add_argument("--seed", type=seed, default=0, help="random seed (split, model)")
    add_json(t, "print what was trained and its held-out scores as JSON")
    t.set_defaults(func=run_train)

    e = g.add_parser("eval", help="score a saved cost model on a dataset directory")
    e.add_argument("--model", required=True, help="saved model directory")
    e.add_argument("--data", required=True, help="dataset directory")
    e.add_argument("--report", default=None, help="write plots and metrics to this folder")
    e.add_argument("--group", default="workload_id", help="column to break errors down by")
    add_json(e, "print the scores (per target, per group) as JSON")
    e.set_defaults(func=run_eval)

    p = g.add_parser("predict", help="predict metrics of designs given as JSON (prints one "
                     "JSON object per design)")
    p.add_argument("--model", required=True, help="saved model directory")
    p.add_argument("--design", action="append", default=[],
                   help="a design as a JSON object (repeatable); default: read JSON lines on stdin")
    p.add_argument("--allow-ood", action="store_true",
                   help="score designs outside the training range or categories (flagged "
                        "\"ood\": true) instead of refusing them")
    p.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    from mlsysgym.core.dataset import read_dataset
    from mlsysgym.costmodels.datasets import split_frame
    from mlsysgym.costmodels.report import write_report
    from mlsysgym.costmodels.tabular import make_model
    from mlsysgym.ir.paths import check_output_dir

    check_output_dir(args.out, "model folder")
    if args.report:
        check_output_dir(args.report, "report folder")
    frame = read_dataset(args.data)
    features = _csv(args.features) or list(frame.attrs.get("design_columns", []))
    kwargs: dict[str, Any] = {"seed": args.seed}
    if args.members is not None:
        kwargs["members"] = args.members
    train, test = split_frame(frame, args.test_fraction, args.seed)
    say(f"training a {args.kind} cost model on {len(train)} rows, {len(features)} features")
    with slow_step(f"still training the {args.kind} model"):
        model = make_model(args.kind, **kwargs).fit(train, features, _csv(args.targets))
    model.save(args.out)
    doc: dict[str, Any] = {"kind": args.kind, "out": str(args.out), "train_rows": len(train),
                           "test_rows": len(test), "features": features,
                           "targets": _csv(args.targets), "scores": None}
    if not args.json:
        print(f"saved {args.kind} cost model ({len(train)} training rows, {len(features)} "
              f"features) to {args.out}")
    if args.report and len(test):
        from mlsysgym.costmodels.base import CostModel

        with slow_step("writing the report"):
            res = write_report(CostModel.load(args.out), test, args.report, args.group, args.kind)
        res.pop("predictions", None)
        doc["scores"] = res["targets"]
        if not args.json:
            _print_scores(res)
    if args.json:
        print_json(args, doc)
    return 0


def _print_scores(res: dict[str, Any]) -> None:
    for tname, r in res["targets"].items():
        print(f"{tname}: MAPE {r['mape_pct']:.3f}%  NRMSE {r['nrmse_pct']:.3f}%  "
              f"Kendall tau {r['kendall_tau']:.4f}")


def run_eval(args: argparse.Namespace) -> int:
    from mlsysgym.core.dataset import read_dataset
    from mlsysgym.costmodels.base import CostModel
    from mlsysgym.costmodels.report import evaluate_frame, write_report
    from mlsysgym.ir.paths import check_output_dir

    if args.report:
        check_output_dir(args.report, "report folder")
    model = CostModel.load(args.model)
    frame = read_dataset(args.data)
    with slow_step(f"scoring the cost model on {len(frame)} rows"):
        res = (write_report(model, frame, args.report, args.group) if args.report
               else evaluate_frame(model, frame, args.group))
    res.pop("predictions", None)
    if args.json:
        print_json(args, json.loads(json.dumps(res, default=float)), indent=1)
    else:
        _print_scores(res)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from mlsysgym.costmodels.base import CostModel, CostModelError, check_domain

    model = CostModel.load(args.model)
    texts = args.design or [line for line in sys.stdin.read().splitlines() if line.strip()]
    try:
        designs = [json.loads(t) for t in texts]
    except json.JSONDecodeError as e:
        raise CostModelError(f"a design is not valid JSON ({e.msg}); pass e.g. "
                             f"--design '{{\"rows\": 32}}'") from None
    if not designs:
        raise CostModelError("no designs given; pass --design JSON or JSON lines on stdin")
    for i, d in enumerate(designs):
        if not isinstance(d, dict):
            raise CostModelError(f"design {i + 1} is {type(d).__name__} JSON, not an object; "
                                 f"pass e.g. --design '{{\"rows\": 32}}'")
    assert model.schema is not None  # load() returns a fitted model
    check_domain(model.schema, designs, allow_ood=args.allow_ood)
    pred = model.predict(designs, strict=True)
    for i in range(len(designs)):
        row: dict[str, Any] = {k: _finite(v[i]) for k, v in pred.values.items()}
        for k, v in (pred.std or {}).items():
            row[f"{k}_std"] = _finite(v[i])
        row["ood"] = bool(pred.ood[i]) or any(v is None for v in row.values())
        print(json.dumps(row, allow_nan=False))
    return 0


def _finite(v: Any) -> float | None:
    """A predicted value as a JSON number, or null when it is not finite (an extrapolation
    that overflowed): the output is always valid JSON."""
    f = float(v)
    return f if math.isfinite(f) else None
