"""Cost models on held-out model families (issue #21 item 7): the MLIR text model and the
tile-size model against FLOPs-only, a fitted roofline and gradient boosting.

    nice -n 19 .venv/bin/python benchmarks/bench_costmodel_families.py   # all in one process

or, as run for BENCHMARKS.md, one process per held-out family, then scored together (the
plain text model, the tiling rows and the first baselines in an earlier run, ``--text plain``
with the same folds, whose exact commands the results file lists; the residual text model and
the MLIR baselines again in a later one; ``--combine`` merges each kernel's model columns, the
later run's baselines replacing the earlier's)::

    for f in cnn vision_transformer text_encoder decoder audio; do
        setsid nice -n 19 .venv/bin/python benchmarks/bench_costmodel_families.py --skip tiling \
            --text residual --families $f --write /tmp/fam/$f/costmodel_families.md & done
    setsid nice -n 19 .venv/bin/python benchmarks/bench_costmodel_families.py --skip tiling \
        --text residual --families --random-reference --write /tmp/fam/random/costmodel_families.md &
    setsid nice -n 19 .venv/bin/python benchmarks/bench_costmodel_families.py --skip tiling \
        --text residual --families --workload-split --write /tmp/fam/wsplit/costmodel_families.md &
    wait
    cp benchmarks/results/costmodel_families{.json,_predictions.parquet} /tmp/prev/
    .venv/bin/python benchmarks/bench_costmodel_families.py --combine /tmp/prev/costmodel_families.json \
        /tmp/fam/*/costmodel_families.json

Data: the kernels measured for this benchmark (``mlsysgym mlir measure --n 2400 --seed 0``,
stopped at 1,496; ``benchmarks/results/costmodel_families_kernels/``) and the tiling rows of
``experiments/results/tiling/data_targets``.

Families (``costmodels/families.py``): CNN, vision transformer, text encoder, decoder, audio.
Every kernel is predicted by models that never saw its family (leave-one-family-out; a
training kernel whose design equals a held-out kernel's is dropped).

**MLIR kernels** (``mlsysgym mlir measure`` rows: MLIR text, FLOPs, bytes, median
``runtime_us``): the text model (``costmodels/mlir_text``; its pretraining is seeded only by
the training rows and the zoo kernels of the *training* families — no held-out kernel's text)
in two variants, the fitted roofline × exp(the text model's correction) (``residual``,
``mlir_text.ResidualTextModel``; the roofline fitted on the fold's training rows) and the whole
log runtime (``plain``),
LightGBM on the hand features (``mlir_text.hand_features``), the fitted roofline
(``mlir_text.RooflineModel``) and FLOPs alone (rank by parsed FLOPs, nothing fitted). Score:
Kendall τ-b over the held-out family's kernels, a 95 % bootstrap interval over its kernels, and
the paired bootstrap of τ(text) − τ(baseline) (``costmodels.metrics``); over families: the mean
τ with a bootstrap interval over the families.

**Tile-size model** (``experiments.tiling_data`` rows: candidate tile configurations of each
shape timed against IREE's default on three codegen targets): the shipped recipe
(``costmodels.tiling_model.train_tiling_model``, LightGBM on shape + configuration + target
features) against padded FLOPs (the multiply-adds executed with the register tiles' padding,
nothing fitted) and a fitted roofline of the tiled kernel (:func:`tile_roofline`). Score: τ
between predicted and measured ratio within each (shape, target), mean over shapes, bootstrap
over shapes; protocols: held-out family (all targets), held-out target (all families), both.

Writes ``--write`` (Markdown, machine stamped), ``<stem>.json`` (scores, provenance),
``<stem>_predictions.parquet`` (every held-out prediction) and ``<stem>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from mlsysgym.costmodels.families import (
    FAMILIES,
    FamilySplit,
    design_keys,
    family_column,
    family_splits,
)
from mlsysgym.costmodels.metrics import kendall_tau, mean_interval, tau_difference, tau_interval

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "benchmarks/results/costmodel_families_kernels"  # measured kernels, read
DEFAULT_TILING = ROOT / "experiments/results/tiling/data_targets"
DEFAULT_WRITE = Path("benchmarks/results/costmodel_families.md")  # default --write, under the cwd
KERNEL_DESIGN = ("kind", "shape", "dtype", "op", "stride", "dilation", "reduce_dims")
TILE_DESIGN = ("kind", "dims", "stride", "dilation")
RANDOM_FOLD = "random 20 % (reference)"
SPLIT_FOLD = "workload split v1 test"
MLIR_MODELS = ("mlir_text_residual", "mlir_text", "lightgbm_hand", "roofline", "flops_only",
               "measured_there")
TEXT_VARIANTS = {"residual": "mlir_text_residual", "plain": "mlir_text"}
TILE_MODELS = ("tile_lightgbm", "tile_roofline", "padded_flops")
NAMES = {"mlir_text_residual": "text × roofline (residual)", "mlir_text": "MLIR text model", "lightgbm_hand": "LightGBM, hand features",
         "roofline": "roofline (fitted)", "flops_only": "FLOPs only",
         "measured_there": "the training machine's measurement",
         "tile_lightgbm": "tile model (LightGBM)", "tile_roofline": "tile roofline (fitted)",
         "padded_flops": "padded FLOPs"}
TARGET_NAMES = {"04930e9da769": "host (x86-64-v4)", "f67530263f5a": "x86-64-v3",
                "72fc708c8c42": "x86-64-v2", "ca6ba476ad55": "an Intel Xeon's host (x86-64-v4)"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- MLIR kernels ---------------------------------------------------------------------------
def kernel_frame(path: Path) -> pd.DataFrame:
    """The measured kernels that ran (``ok``, runtime > 0), with a ``family`` column."""
    from mlsysgym.core.dataset import read_dataset

    f = read_dataset(path)
    f = f[f["ok"].astype(bool) & (f["runtime_us"] > 0)].reset_index(drop=True)
    return f.assign(family=family_column(f))


def pretrain_seeds(models: set[str], test: pd.DataFrame) -> pd.DataFrame:
    """Zoo kernels (design columns, no runtime) of the training ``models``, minus any kernel
    with a held-out kernel's design: the text model's extra pretraining seeds."""
    from mlsysgym.costmodels.mlir_pretrain import spec_of_row
    from mlsysgym.experiments.mlir_measure import zoo_kernel_specs

    def key(design: dict[str, Any]) -> str:
        return json.dumps(design, sort_keys=True)

    held = {key(spec_of_row(r).to_design()) for r in test.to_dict("records")}
    return pd.DataFrame([s.to_design() for m, s in zoo_kernel_specs()
                         if m in models and key(s.to_design()) not in held])


def _seed_models(fold: str) -> set[str]:
    """Models whose zoo kernels may seed pretraining in a fold: the other families' (family
    folds), every model (random reference), the train split's (workload split)."""
    if fold == SPLIT_FOLD:
        from mlsysgym.ir.workloads import split

        return {w.name for w in split("train")}
    return {m for f, ms in FAMILIES.items() if f != fold for m in ms}


def text_config(args: argparse.Namespace) -> dict[str, Any]:
    """Hyperparameters of the text model in this benchmark (a reduced budget; see --help)."""
    return {"epochs": args.epochs, "patience": args.epochs, "max_seconds": args.max_seconds,
            "batch_size": 32, "rank_weight": 0.5, "dropout": 0.1, "token_dropout": 0.15,
            "pretrain": args.pretrain, "pretrain_epochs": args.pretrain_epochs, "periodic": 16}


def mlir_fold(frame: pd.DataFrame, split: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Fit the MLIR-kernel models on one fold's training rows; predictions on its test rows
    and fit CPU seconds."""
    from mlsysgym.costmodels.mlir_text import HAND_FEATURES, RooflineModel, hand_features
    from mlsysgym.costmodels.tabular import LightGBMCostModel

    train = hand_features(frame.iloc[split.train])
    test = hand_features(frame.iloc[split.test])
    preds: dict[str, np.ndarray] = {"flops_only": test["flops"].to_numpy(np.float64)}
    cpu: dict[str, float] = {}
    t = time.process_time()
    preds["roofline"] = RooflineModel().fit(train).predict(test).values["runtime_us"]
    cpu["roofline"] = time.process_time() - t
    t = time.process_time()
    gbm = LightGBMCostModel(seed=args.seed).fit(
        train, features=list(HAND_FEATURES), targets=["runtime_us"], categorical=["kind", "op"],
        log_features=[], target_transform="log")
    preds["lightgbm_hand"] = gbm.predict(test).values["runtime_us"]
    cpu["lightgbm_hand"] = time.process_time() - t
    seeds = 0
    variants = [] if args.no_text else args.text
    if variants:
        from mlsysgym.costmodels.mlir_text import MlirTextCostModel, ResidualTextModel

        unlabeled = pretrain_seeds(_seed_models(split.family), test)
        seeds = len(unlabeled)
    for variant in variants:
        t = time.process_time()
        cls = ResidualTextModel if variant == "residual" else MlirTextCostModel
        text = cls(members=args.members, seed=args.seed, **text_config(args)).fit(
            train, targets=["runtime_us"], unlabeled=unlabeled)
        name = TEXT_VARIANTS[variant]
        preds[name] = text.predict(test).values["runtime_us"]
        cpu[name] = time.process_time() - t
    log(f"mlir fold {split.family}: {len(split.train)} train / {len(split.test)} test, "
        f"cpu {', '.join(f'{m} {s:.0f} s' for m, s in cpu.items())}")
    return {"family": split.family, "rows": split.test, "preds": preds, "cpu_s": cpu,
            "train_rows": len(split.train), "dropped_duplicates": split.dropped_duplicates,
            "pretrain_seed_kernels": seeds}


def random_split(frame: pd.DataFrame, seed: int, fraction: float = 0.2) -> FamilySplit:
    """The in-distribution reference: a random ``fraction`` of the kernels held out (training
    kernels with a held-out kernel's design dropped, as in the family splits)."""
    n = len(frame)
    test = np.sort(np.random.default_rng(seed).choice(n, size=round(fraction * n), replace=False))
    keys = design_keys(frame, KERNEL_DESIGN)
    rest = np.setdiff1d(np.arange(n), test)
    clash = np.isin(keys[rest], keys[test])
    return FamilySplit(RANDOM_FOLD, rest[~clash], test, int(clash.sum()))


def workload_split(frame: pd.DataFrame) -> FamilySplit:
    """The workload splits' protocol (``ir/workloads.py``): train on the kernels of the train
    split's zoo models, test on those of the test split's (validation models unused); training
    kernels with a test kernel's design dropped."""
    from mlsysgym.ir.workloads import ZOO_FAMILY, split

    train_models = {w.name for w in split("train") if w.name in ZOO_FAMILY}
    test_models = {w.name for w in split("test") if w.name in ZOO_FAMILY}
    model = frame["workload_id"].astype(str).to_numpy()
    test = np.flatnonzero(np.isin(model, list(test_models)))
    train = np.flatnonzero(np.isin(model, list(train_models)))
    keys = design_keys(frame, KERNEL_DESIGN)
    clash = np.isin(keys[train], keys[test])
    return FamilySplit(SPLIT_FOLD, train[~clash], test, int(clash.sum()))


def run_mlir(frame: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """Leave-one-family-out predictions of every MLIR-kernel model (and of the random reference
    fold when asked): one row per kernel and fold."""
    splits = list(family_splits(frame, KERNEL_DESIGN, args.families)) if args.families != [] else []
    if args.random_reference:
        splits.append(random_split(frame, args.seed))
    if args.workload_split:
        splits.append(workload_split(frame))
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(args.jobs, len(splits))) as pool:
            folds = list(pool.map(mlir_fold, [frame] * len(splits), splits,
                                  [args] * len(splits)))
    else:
        folds = [mlir_fold(frame, s, args) for s in splits]
    parts = []
    for f in folds:
        sub = frame.iloc[f["rows"]][["key", "family", "workload_id", "kind", "runtime_us"]]
        fold = f["family"]
        if fold == SPLIT_FOLD:  # scored per family of the workload splits
            from mlsysgym.ir.workloads import ZOO_FAMILY

            fold = [f"{SPLIT_FOLD}: {ZOO_FAMILY[m]}" for m in sub["workload_id"]]
        sub = sub.assign(fold=fold, **{f"pred_{m}": p for m, p in f["preds"].items()},
                         train_rows=f["train_rows"], dropped_duplicates=f["dropped_duplicates"],
                         pretrain_seed_kernels=f["pretrain_seed_kernels"],
                         **{f"cpu_s_{m}": s for m, s in f["cpu_s"].items()})
        parts.append(sub)
    return pd.concat(parts, ignore_index=True)


# ---- tile-size model ------------------------------------------------------------------------
def tiling_frame(path: Path) -> pd.DataFrame:
    """The tiling rows as the tile model trains on them (``features_frame``: IREE's default of
    each (shape, target) added as a ratio-1 row) with ``family`` and the roofline's terms."""
    from mlsysgym.core.dataset import read_dataset
    from mlsysgym.costmodels.tiling_model import features_frame

    f = features_frame(read_dataset(path))
    f = f.assign(family=family_column(f))
    return pd.concat([f, tile_terms(f)], axis=1)


def _terms(m: np.ndarray, n: np.ndarray, k: np.ndarray, work: np.ndarray, lanes: np.ndarray,
           regs: np.ndarray, kn: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    pad = (np.ceil(m / kn["v_m"]) * kn["v_m"] / m) * (np.ceil(n / kn["v_n"]) * kn["v_n"] / n) \
        * (np.ceil(k / kn["r_k"]) * kn["r_k"] / k)
    lane_use = kn["v_n"] / (np.ceil(kn["v_n"] / lanes) * lanes)
    return {"padded": work * pad, "compute": work * pad / lane_use,
            "traffic": work * (1.0 / kn["d_n"] + 1.0 / kn["d_m"]),
            "spill": np.maximum(kn["v_m"] * np.ceil(kn["v_n"] / lanes) / regs - 1.0, 0.0),
            "tiles": np.ceil(m / kn["d_m"]) * np.ceil(n / kn["d_n"])}


def tile_terms(frame: pd.DataFrame) -> pd.DataFrame:
    """Analytic terms of each row's configuration and of its shape's default (``def_`` prefix):
    padded work (multiply-adds with M, N, K rounded up to the register tile), compute (padded
    work ÷ the used share of the vector lanes), operand traffic (work × (1/d_n + 1/d_m): A and B
    re-read once per workgroup tile), accumulator spill (register tile beyond the register
    file) and workgroup tiles."""
    from mlsysgym.costmodels.tiling_space import KNOBS, TilingInstance

    mnkh = {}
    for key, r in frame.drop_duplicates("problem_key").set_index("problem_key").iterrows():
        dims = tuple(int(x) for x in str(r["dims"]).split("x"))
        inst = TilingInstance(str(r["kind"]), dims, int(r["stride"]), int(r["dilation"]))
        mnkh[key] = (*inst.mnkh, inst.macs)
    arr = np.array([mnkh[k] for k in frame["problem_key"]], dtype=np.float64)
    m, n, k, work = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 4]
    bits = frame["vector_bits"].to_numpy(np.float64)
    lanes, regs = np.maximum(bits // 32, 1), np.where(bits >= 512, 32.0, 16.0)
    cfg = _terms(m, n, k, work, lanes, regs,
                 {kn: frame[kn].to_numpy(np.float64) for kn in KNOBS})
    dft = _terms(m, n, k, work, lanes, regs,
                 {kn: frame[f"default_{kn}"].to_numpy(np.float64) for kn in KNOBS})
    return pd.DataFrame({**{f"t_{c}": v for c, v in cfg.items()},
                         **{f"def_{c}": v for c, v in dft.items()}}, index=frame.index)


def _roofline_time(theta: np.ndarray, f: pd.DataFrame, prefix: str) -> np.ndarray:
    beta, gamma, delta = np.exp(theta)
    t = np.maximum(f[f"{prefix}compute"].to_numpy(), beta * f[f"{prefix}traffic"].to_numpy())
    return t * (1.0 + gamma * f[f"{prefix}spill"].to_numpy()) + delta * f[f"{prefix}tiles"].to_numpy()


def tile_roofline(train: pd.DataFrame) -> np.ndarray:
    """Fitted roofline of a tiled kernel: time = max(compute, β·traffic)·(1 + γ·spill) +
    δ·tiles (terms of :func:`tile_terms`), predicted ratio = time(config) / time(default);
    (log β, log γ, log δ) minimize the squared error of the log ratio on ``train``
    (Nelder–Mead from a grid of starts)."""
    from scipy.optimize import minimize

    ly = np.log(train["runtime_ratio"].to_numpy(np.float64))

    def loss(theta: np.ndarray) -> float:
        p = np.log(_roofline_time(theta, train, "t_") / _roofline_time(theta, train, "def_"))
        return float(np.mean((p - ly) ** 2))

    starts = [np.array([b, g, d]) for b in (-4.0, -1.0, 2.0) for g in (-3.0, 0.0)
              for d in (-2.0, 4.0, 10.0)]
    best = min((minimize(loss, s, method="Nelder-Mead", options={"maxiter": 2000})
                for s in starts), key=lambda r: r.fun)
    return best.x


def tile_fold(frame: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """Predicted ratios of the test rows by the tile models fitted on the train rows."""
    from mlsysgym.costmodels.tiling_model import train_tiling_model

    tr, te = frame.iloc[train], frame.iloc[test]
    model = train_tiling_model(tr, members=3)
    theta = tile_roofline(tr)
    return {"tile_lightgbm": model.predict(te).values["runtime_ratio"],
            "tile_roofline": _roofline_time(theta, te, "t_") / _roofline_time(theta, te, "def_"),
            "padded_flops": te["t_padded"].to_numpy() / te["def_padded"].to_numpy()}


def tile_protocols(frame: pd.DataFrame, held_targets: list[str]) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(protocol, held-out family or ``all``, train positions, test positions): leave one family
    out over all targets; each of ``held_targets`` left out over all families; and a family
    and the first held-out target at once. A training shape equal to a test shape is dropped
    in the family protocols."""
    out = []
    tgt = frame["target_id"].to_numpy() == held_targets[0]
    for s in family_splits(frame, TILE_DESIGN):
        out.append(("family", s.family, s.train, s.test))
        out.append(("family+target", s.family, s.train[~tgt[s.train]], s.test[tgt[s.test]]))
    for t in held_targets:
        tgt = frame["target_id"].to_numpy() == t
        out.append((f"target:{t}", "all", np.flatnonzero(~tgt), np.flatnonzero(tgt)))
    return out


def run_tiling(frame: pd.DataFrame, held_targets: list[str]) -> pd.DataFrame:
    """Predictions of every protocol's test rows (one row per candidate per protocol)."""
    parts = []
    for proto, fam, train, test in tile_protocols(frame, held_targets):
        t = time.process_time()
        preds = tile_fold(frame, train, test)
        sub = frame.iloc[test][["problem_key", "target_id", "family", "kind", "runtime_ratio"]]
        parts.append(sub.assign(protocol=proto, held_out=fam, train_rows=len(train),
                                **{f"pred_{m}": p for m, p in preds.items()}))
        log(f"tiling {proto} {fam}: {len(train)} train / {len(test)} test rows, "
            f"{time.process_time() - t:.0f} s cpu")
    return pd.concat(parts, ignore_index=True)


def per_shape(rows: pd.DataFrame, models: tuple[str, ...]) -> pd.DataFrame:
    """Kendall τ of each model within each (target, shape) with ≥ 3 candidates of distinct
    measured ratios, and its top-1 score (best ratio ÷ ratio of the predicted best)."""
    out = []
    for (_, _), g in rows.groupby(["target_id", "problem_key"], sort=False):
        y = g["runtime_ratio"].to_numpy()
        if len(g) < 3 or np.ptp(y) == 0:
            continue
        rec = {"family": g["family"].iloc[0]}
        for m in models:
            p = g[f"pred_{m}"].to_numpy()
            rec[m] = kendall_tau(y, p) if np.ptp(p) > 0 else 0.0
            rec[f"top1_{m}"] = float(y.min() / y[int(np.argmin(p))])
        out.append(rec)
    return pd.DataFrame(out)


# ---- scores ---------------------------------------------------------------------------------
def mlir_scores(pred: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Per family: τ of each model that predicted it, with its interval over kernels, and the
    paired differences lead − baseline (lead: the text model, else LightGBM). Summaries over
    sets of families (those every model predicted, and all): mean τ and mean difference with
    intervals over families, and τ pooled over their kernels."""
    have = [m for m in MLIR_MODELS if f"pred_{m}" in pred and pred[f"pred_{m}"].notna().any()]
    lead = have[0]
    fams: dict[str, Any] = {}
    fold = "fold" if "fold" in pred else "family"
    for fam, g in pred.groupby(fold, sort=False):
        y = g["runtime_us"].to_numpy()
        models = [m for m in have if g[f"pred_{m}"].notna().all()]
        fams[fam] = {"n": len(g), "train_rows": int(g["train_rows"].iloc[0]),
                     "dropped_duplicates": int(g["dropped_duplicates"].iloc[0]),
                     "tau": {m: tau_interval(y, g[f"pred_{m}"], n_boot, seed) for m in models},
                     "diff": {m: tau_difference(y, g[f"pred_{lead}"], g[f"pred_{m}"], n_boot, seed)
                              for m in models if m != lead and lead in models}}
    summaries = []
    held = [f for f in fams if f in FAMILIES]
    sets = [("families every model predicted", [f for f in held if len(fams[f]["tau"]) == len(have)]),
            ("all families", held),
            ("workload split v1 test families", [f for f in fams if f.startswith(SPLIT_FOLD)])]
    for label, chosen in sets:
        if not chosen or any(chosen == sm["families"] for sm in summaries):
            continue
        models = [m for m in have if all(m in fams[f]["tau"] for f in chosen)]
        rows = pred[pred[fold].isin(chosen)]
        summaries.append({
            "label": label, "families": chosen,
            "tau": {m: mean_interval([fams[f]["tau"][m]["tau"] for f in chosen], n_boot, seed)
                    for m in models},
            "diff": {m: mean_interval([fams[f]["diff"][m]["diff"] for f in chosen], n_boot, seed)
                     for m in models if m != lead and lead in models},
            "pooled": {m: tau_interval(rows["runtime_us"], rows[f"pred_{m}"], n_boot, seed)
                       for m in models}})
    return {"lead": lead, "models": have, "families": fams, "summaries": summaries}


def tile_scores(pred: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Per protocol and held-out family: mean within-shape τ and top-1 over shapes with
    bootstrap intervals over shapes, and the paired difference tile model − baseline."""
    out: dict[str, Any] = {}
    for (proto, fam), g in pred.groupby(["protocol", "held_out"], sort=False):
        shapes = per_shape(g, TILE_MODELS)
        if shapes.empty:
            continue
        rec = {"shapes": len(shapes), "rows": len(g), "train_rows": int(g["train_rows"].iloc[0]),
               "tau": {m: mean_interval(shapes[m], n_boot, seed) for m in TILE_MODELS},
               "top1": {m: float(shapes[f"top1_{m}"].mean()) for m in TILE_MODELS},
               "diff": {m: mean_interval(shapes["tile_lightgbm"] - shapes[m], n_boot, seed)
                        for m in TILE_MODELS[1:]}}
        out.setdefault(proto, {})[fam] = rec
    return out


# ---- report ---------------------------------------------------------------------------------
def _ci(d: dict[str, float], key: str = "tau") -> str:
    return f"{d[key]:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]"


def _diff(d: dict[str, float], key: str = "diff") -> str:
    return f"{d[key]:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _cells(d: dict[str, Any], models: list[str], fmt: Any, key: str) -> str:
    return " | ".join(fmt(d[m], key) if m in d else "–" for m in models)


def mlir_markdown(s: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The MLIR-kernel section: one row per held-out family, then the summaries."""
    models, lead = s["models"], s["lead"]
    others = [m for m in models if m != lead]
    head = ("| held-out family | kernels | train | "
            + " | ".join(f"{NAMES[m]} τ [95 %]" for m in models) + " | "
            + " | ".join(f"{NAMES[lead]} − {NAMES[m]}" for m in others) + " |")
    lines = ["## MLIR kernels: leave one family out", "",
             (f"{meta['kernels']} measured kernels (`{meta['data']}`, measured on "
              f"{meta['kernel_machine']}); τ intervals: {meta.get('bootstrap', 1000)} bootstrap resamples of the family's "
              "kernels (the difference columns are paired); *mean* rows average over families "
              "with intervals from resampling the families; *pooled* rows take all their "
              "held-out predictions together (intervals over kernels)."), "", head,
             "|---|---:|---:|" + "---:|" * (len(models) + len(others))]
    for fam, r in s["families"].items():
        lines.append(f"| {fam} | {r['n']} | {r['train_rows']} | "
                     + _cells(r["tau"], models, _ci, "tau") + " | "
                     + _cells(r["diff"], others, _diff, "diff") + " |")
    for sm in s["summaries"]:
        n = len(sm["families"])
        lines.append(f"| **mean, {sm['label']} ({n})** | | | "
                     + _cells(sm["tau"], models, _ci, "mean") + " | "
                     + _cells(sm["diff"], others, _diff, "mean") + " |")
        lines.append(f"| pooled, {sm['label']} ({n}) | | | "
                     + _cells(sm["pooled"], models, _ci, "tau") + " |" + " |" * len(others))
    cpu = meta.get("fold_cpu_s", {})
    if cpu:
        lines += ["", "Fit CPU time summed over the folds (train + predict, one process per fold): "
                  + ", ".join(f"{NAMES[m]} {cpu[m]:.0f} s" for m in models if m in cpu) + "."]
    return lines


def tile_markdown(s: dict[str, Any], held_targets: list[str]) -> list[str]:
    """The tile-model section: one table per protocol."""
    name = {t: TARGET_NAMES.get(t, t) for t in held_targets}
    titles = {"family": "held-out family (all targets)",
              "family+target": f"held-out family *and* target {name[held_targets[0]]}",
              **{f"target:{t}": f"held-out target {name[t]} (all families)" for t in held_targets}}
    lines = ["## Tile-size model", "",
             ("Mean Kendall τ within each (shape, target) over its measured candidates (IREE's "
             "default included), over shapes with ≥ 3 candidates of distinct ratios; 95 % "
             "intervals from bootstrap resamples of the shapes; the difference columns are paired "
             "per shape; top-1 = best measured ratio ÷ measured ratio of the predicted best."), ""]
    for proto, fams in s.items():
        lines += [f"### {titles.get(proto, proto)}", "",
                  "| held out | shapes | train rows | " + " | ".join(f"{NAMES[m]} τ" for m in TILE_MODELS)
                  + " | " + " | ".join(f"model − {NAMES[m]}" for m in TILE_MODELS[1:])
                  + " | top-1 model / roofline / padded |",
                  "|---|---:|---:|" + "---:|" * (2 * len(TILE_MODELS))]
        for fam, r in fams.items():
            lines.append(f"| {fam} | {r['shapes']} | {r['train_rows']} | "
                         + " | ".join(_ci(r["tau"][m], "mean") for m in TILE_MODELS) + " | "
                         + " | ".join(_diff(r["diff"][m], "mean") for m in TILE_MODELS[1:])
                         + " | " + " / ".join(f"{r['top1'][m]:.3f}" for m in TILE_MODELS) + " |")
        lines.append("")
    return lines


def plot(mlir: dict[str, Any] | None, tile: dict[str, Any] | None, path: Path) -> None:
    """τ per held-out family per model with 95 % intervals: MLIR kernels and tile model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(title, fams, key) for title, fams, key in (
        ("MLIR kernels (τ over the family's kernels)",
         {f: r["tau"] for f, r in (mlir or {}).get("families", {}).items()}, "tau"),
        ("tile model, held-out family (mean τ within shape)",
         {f: r["tau"] for f, r in (tile or {}).get("family", {}).items()}, "mean")) if fams]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (title, fams, key) in zip(axes[0], panels):
        models = list(dict.fromkeys(m for r in fams.values() for m in r))
        width = 0.8 / len(models)
        nan = {key: np.nan, "lo": np.nan, "hi": np.nan}
        for j, m in enumerate(models):
            x = np.arange(len(fams)) + (j - (len(models) - 1) / 2) * width
            cell = [fams[f].get(m, nan) for f in fams]
            v = np.array([c[key] for c in cell])
            err = np.nan_to_num(np.array([[c[key] - c["lo"], c["hi"] - c[key]] for c in cell]).T)
            ax.bar(x, v, width, yerr=err, capsize=2, label=NAMES[m])
        labels = [f.replace(f"{SPLIT_FOLD}: ", "split v1: ").replace(" (reference)", "")
                  for f in fams]
        ax.set_xticks(np.arange(len(fams)), labels, rotation=30, ha="right")
        ax.set_ylabel("Kendall τ")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="measured MLIR kernel dataset")
    ap.add_argument("--tiling-data", type=Path, default=DEFAULT_TILING, help="tiling dataset")
    ap.add_argument("--families", nargs="*", default=None, choices=list(FAMILIES),
                    help="MLIR kernels: families to hold out (default: every family; none "
                         "with --random-reference: only the reference fold)")
    ap.add_argument("--random-reference", action="store_true",
                    help="MLIR kernels: also hold out a random 20 %% of the kernels (the "
                         "in-distribution reference)")
    ap.add_argument("--workload-split", action="store_true",
                    help="MLIR kernels: also train on the train split's zoo models and test on "
                         "the test split's (ir/workloads.py), scored per test family")
    ap.add_argument("--held-targets", nargs="+", default=["f67530263f5a", "04930e9da769"],
                    help="tile model: target_ids left out, one at a time (default x86-64-v3, "
                         "then host); the first is also left out with each family")
    ap.add_argument("--skip", nargs="*", default=[], choices=("mlir", "tiling"))
    ap.add_argument("--no-text", action="store_true", help="baselines only (no text model)")
    ap.add_argument("--text", nargs="+", default=list(TEXT_VARIANTS), choices=list(TEXT_VARIANTS),
                    help="text-model variants: residual (fitted roofline × exp(the text "
                         "model's correction), mlir_text.ResidualTextModel) and plain (the "
                         "whole log runtime); default both")
    ap.add_argument("--members", type=int, default=3, help="text-model ensemble members")
    ap.add_argument("--epochs", type=int, default=25, help="text-model epochs (best kept)")
    ap.add_argument("--max-seconds", type=float, default=1500.0,
                    help="text-model training time cap per member")
    ap.add_argument("--pretrain", type=int, default=30_000,
                    help="unmeasured emitted kernels the text encoder is pretrained on")
    ap.add_argument("--pretrain-epochs", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="MLIR folds in parallel processes")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", type=Path, default=DEFAULT_WRITE)
    ap.add_argument("--combine", nargs="+", type=Path, default=None, metavar="JSON",
                    help="score the saved predictions of earlier runs (their .json files) "
                         "together instead of training")
    ap.add_argument("--runtimes-from", type=Path, default=None, metavar="DATA",
                    help="with --combine: score the MLIR kernels' predictions against the "
                         "runtimes of the same kernels in this dataset (e.g. measured on "
                         "another machine) instead of those they were trained beside; the "
                         "tiling rows are left out")
    ap.add_argument("--from-json", action="store_true",
                    help="re-render the Markdown and PNG from <stem>.json (no training)")
    return ap.parse_args(argv)


def _machine(frame: pd.DataFrame) -> str:
    """The machine(s) a kernel dataset's rows were measured on, from their ``machine`` column."""
    seen = {(d.get("cpu", "?"), d.get("target_id", "unrecorded"))
            for d in (json.loads(m) for m in frame["machine"].dropna().unique())}
    return "; ".join(f"{cpu} (target_id `{tid}`)" for cpu, tid in sorted(seen))


def render(record: dict[str, Any], write: Path) -> str:
    """Markdown of a results record (machine stamped from the record) and its PNG."""
    from mlsysgym.experiments.report import stamp_recorded

    meta = record["meta"]
    lines = ["# Cost models on held-out model families (issue #21 item 7)", "",
             (f"Command: `{meta['command']}` ({meta['seconds']:.0f} s wall, "
             f"{meta['cpu_seconds']:.0f} s CPU)."), "",
             "Families: " + "; ".join(f"**{f}** {', '.join(m)}" for f, m in FAMILIES.items())
             + ". Every prediction comes from models trained without the held-out family; a "
             "training kernel or shape equal to a held-out one is dropped.", ""]
    if record.get("mlir"):
        lines += [f"Text model: {meta['text']}.", "", *mlir_markdown(record["mlir"], meta), ""]
    if record.get("tiling"):
        lines += tile_markdown(record["tiling"], meta["held_targets"])
    text = stamp_recorded("\n".join(lines), record)
    write.parent.mkdir(parents=True, exist_ok=True)
    write.write_text(text)
    plot(record.get("mlir"), record.get("tiling"), write.with_suffix(".png"))
    return text


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the parallel folds)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _fold_cpu(pred: pd.DataFrame) -> dict[str, float]:
    """Fit CPU seconds per model summed over the folds (a workload-split fold counted once,
    though its rows are scored per test family)."""
    fold = pred["fold"].where(~pred["fold"].str.startswith(SPLIT_FOLD), SPLIT_FOLD)
    cols = [c for c in pred if c.startswith("cpu_s_")]
    return {c[6:]: float(pred[cols].groupby(fold.to_numpy())[c].first().sum()) for c in cols}


def merge_predictions(preds: list[pd.DataFrame]) -> pd.DataFrame:
    """The prediction rows of several runs as one frame: a kernel predicted in the same fold by
    several runs becomes one row whose every column comes from the last run that filled it (a
    later run's baselines replace an earlier run's; a model only an earlier run trained, e.g.
    the plain text model, is kept); tiling rows are concatenated."""
    pred = pd.concat(preds, ignore_index=True)
    if "key" not in pred:
        return pred
    mlir = pred["part"] == "mlir"
    if "fold" not in pred:
        pred["fold"] = pred["family"]
    pred["fold"] = pred["fold"].fillna(pred["family"])
    merged = pred[mlir].groupby(["key", "fold"], sort=False, as_index=False).last()
    return pd.concat([merged, pred[~mlir]], ignore_index=True)


def remeasured(pred: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """The MLIR kernels of ``pred`` with each one's ``runtime_us`` taken from ``frame`` (the
    same kernel, matched by its row key, measured elsewhere); kernels ``frame`` lacks and the
    tiling rows are dropped. The predictions are unchanged: the models never saw ``frame``'s
    machine. The runtime they were trained beside becomes one more predictor
    (``pred_measured_there``): how well any model of that machine's times could rank these."""
    if "key" not in pred:
        raise SystemExit("--runtimes-from: the combined runs hold no MLIR-kernel predictions")
    mlir = pred[pred["part"] == "mlir"]
    runtime = mlir["key"].map(frame.drop_duplicates("key").set_index("key")["runtime_us"])
    if not runtime.notna().any():
        raise SystemExit("--runtimes-from: no kernel of the predictions is in that dataset")
    return mlir.assign(runtime_us=runtime, pred_measured_there=mlir["runtime_us"])[runtime.notna()]


def combine(args: argparse.Namespace, stem: Path) -> int:
    """Score and render the predictions of earlier runs together (e.g. one process per held-out
    family): their ``<stem>_predictions.parquet`` files, next to their ``<stem>.json``."""
    from mlsysgym.core.target import provenance

    metas, preds = [], []
    for part in args.combine:
        metas.append(json.loads(part.read_text())["meta"])
        preds.append(pd.read_parquet(part.with_name(part.stem + "_predictions.parquet")))
    pred = merge_predictions(preds)
    meta: dict[str, Any] = {k: v for m in metas for k, v in m.items()}
    if args.runtimes_from is not None:
        from mlsysgym.core.dataset import DatasetError

        try:
            elsewhere = kernel_frame(args.runtimes_from)
        except DatasetError as e:
            raise SystemExit(f"--runtimes-from: {e}") from None
        pred = remeasured(pred, elsewhere)
        meta.update(data=f"{meta.get('data', '?')}, scored against {args.runtimes_from}",
                    kernel_machine=(f"{meta.get('kernel_machine', '?')}; the runtimes scored: "
                                    f"{_machine(elsewhere)}"))
    texts = list(dict.fromkeys(m["text"] for m in metas if "text" in m))
    if texts:
        meta["text"] = " / ".join(texts)
    fold_cpu = _fold_cpu(pred[pred["part"] == "mlir"]) if "key" in pred else {}
    meta.update(command="; ".join(m["command"] for m in metas)
                + f"; then python {' '.join(sys.argv)}",
                seconds=sum(m["seconds"] for m in metas),
                cpu_seconds=sum(m["cpu_seconds"] for m in metas), fold_cpu_s=fold_cpu,
                bootstrap=args.bootstrap)
    if "key" in pred:
        meta["kernels"] = int(pred.loc[pred["part"] == "mlir", "key"].nunique())
    record: dict[str, Any] = {}
    if (pred["part"] == "mlir").any():
        record["mlir"] = mlir_scores(pred[pred["part"] == "mlir"], args.bootstrap, args.seed)
    if (pred["part"] == "tiling").any():
        record["tiling"] = tile_scores(pred[pred["part"] == "tiling"], args.bootstrap, args.seed)
    record.update(meta=meta, provenance=provenance(command=sys.argv[1:]))
    stem.parent.mkdir(parents=True, exist_ok=True)
    pred.to_parquet(f"{stem}_predictions.parquet", index=False)
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1, default=float))
    print(render(record, args.write))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stem = args.write.with_suffix("")
    if args.from_json:
        print(render(json.loads(stem.with_suffix(".json").read_text()), args.write))
        return 0
    if args.combine:
        return combine(args, stem)
    from mlsysgym.core.target import provenance

    t0, c0 = time.perf_counter(), _cpu_seconds()
    record: dict[str, Any] = {}
    meta: dict[str, Any] = {"command": " ".join(["python", *sys.argv]),
                            "held_targets": args.held_targets, "bootstrap": args.bootstrap}
    preds = []
    if "mlir" not in args.skip:
        frame = kernel_frame(args.data)
        log(f"{len(frame)} kernels: {frame['family'].value_counts().to_dict()}")
        pred = run_mlir(frame, args)
        record["mlir"] = mlir_scores(pred, args.bootstrap, args.seed)
        meta.update(kernels=len(frame), data=str(args.data), kernel_machine=_machine(frame),
                    fold_cpu_s=_fold_cpu(pred),
                    text=("not trained (--no-text)" if args.no_text else
                          f"{' and '.join(args.text)} ({', '.join(NAMES[TEXT_VARIANTS[v]] for v in args.text)}): "
                          f"{args.members} member(s), ≤ {args.epochs} epochs, ≤ {args.max_seconds:.0f} s "
                          f"per member, encoder pretrained {args.pretrain_epochs} epoch(s) on "
                          f"{args.pretrain} emitted kernels seeded by the training kernels and the "
                          f"training families' zoo kernels only (no held-out text); "
                          f"{json.dumps(text_config(args))}"))
        preds.append(pred.assign(part="mlir"))
    if "tiling" not in args.skip:
        tpred = run_tiling(tiling_frame(args.tiling_data), args.held_targets)
        record["tiling"] = tile_scores(tpred, args.bootstrap, args.seed)
        preds.append(tpred.assign(part="tiling"))
    meta.update(seconds=time.perf_counter() - t0, cpu_seconds=_cpu_seconds() - c0)
    record.update(meta=meta, provenance=provenance(command=sys.argv[1:]))
    stem.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(preds, ignore_index=True).to_parquet(f"{stem}_predictions.parquet", index=False)
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1, default=float))
    print(render(record, args.write))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
