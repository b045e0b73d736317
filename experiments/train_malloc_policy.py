"""Train a mallocGame graph-network policy (the local search's move ranker, or with
``--moves repair`` the LNS neighbourhood picker, with ``--moves differ`` the jump picker) over
the training split; ship it as ONNX + card.

    python -m mlsysgym.experiments.train_malloc_policy [--moves {change,repair,repair_late,differ}] [--positions 256]
        [--xla-top 192] [--target listwise] [--epochs 120]
        [--capacities 0.25 0.5 1] [--workers 2] [--out results/policies/malloc_gnn.onnx]

1. **Labels** (the gain of each move, measured): for every training instance
   (:func:`mlsysgym.ir.workloads.malloc_instances` ``("train")``, at ``--capacities``),
   :func:`mlsysgym.agents.learned_malloc.move_gains` tries the search's moves at
   ``--positions`` positions of the heuristic's episode (all of them on smaller instances, a
   seeded sample on larger ones) and its first ``--xla-top`` positions (where a 10-s search
   works): the decision changed, the rest completed greedily, with ejections, and the time
   saved recorded. With ``--moves repair`` (the LNS policy), instead the time one CP-SAT
   repair around each of ``--positions`` sampled centre buffers saves
   (:func:`mlsysgym.agents.malloc_lns.repair_gain`); with ``--moves repair_late`` the same
   from where the ablation's LNS starts in a 10-s run. With ``--moves differ`` (the jump
   policy), every candidate buffer where the ablation's LNS starts, labelled by whether CP-SAT
   (``--cpsat-s`` seconds, hinted with that placement) re-decides it (:func:`label_differ`).
2. **Training**: :func:`mlsysgym.agents.gnn.build_graph_net` on
   :func:`mlsysgym.agents.learned_malloc.instance_graph`, full-graph Adam steps, loss = per-graph
   mean binary cross-entropy of the per-node logit against "this move lowers the time" over the
   labelled buffers (``--target graded``: improving moves' targets 1/2 + 1/2 × gain ÷ the
   instance's best gain), improving moves weighted so both classes count alike per graph;
   ``--target listwise``: per graph the cross-entropy between the softmax of the labelled
   buffers' logits and their gains normalized to sum 1 (ListNet: the larger the gain, the
   earlier the move); ``--target rate`` (LNS labels, which record each repair's seconds): the
   same with the gains per second of repair, so the softmax draws centres in proportion to
   what they save per second of a time-budgeted search.
3. **Validation**: ``learned`` (the agent as shipped, guided by the new network) against
   ``learned_no_network`` (XLA order) and against the same agent guided by an untrained
   network of the same shape,
   on the validation split at ``--val-seconds`` each, ``--val-seeds`` seeds, the three
   interleaved per instance: mean and per-instance differences of the time saved, in the card.
4. Writes the ONNX file and its JSON card (splits version and digest, instances, seeds, CPU
   seconds of every step, the target fingerprint of this machine, validation numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.target import cpu_seconds

# Under the working directory, never the installed package; the repository's shipped policies
# were written with --out agents/policies/malloc_gnn.onnx
# --labels-out benchmarks/results/learned_malloc_move_labels.json, and with --moves repair
# --positions 24 --val-seeds 0 --out agents/policies/malloc_lns_gnn.onnx
# --labels-out benchmarks/results/learned_malloc_repair_labels.json, and with --moves differ
# --cpsat-s 20 --capacities 0.1 0.15 0.2 0.3 --val-seeds 0 --epochs 80
# --out agents/policies/malloc_jump_gnn.onnx
# --labels-out benchmarks/results/learned_malloc_jump_labels.json.
DEFAULT_OUT = Path("results") / "policies" / "malloc_gnn.onnx"
DEFAULT_LABELS = Path("results") / "policies" / "malloc_move_labels.json"


METHODS = {"change": "move ranking: per buffer, the time saved by changing its decision in the "
                      "heuristic's episode (greedy completion, ejections), measured",
           "repair": "LNS centre ranking: per sampled centre buffer, the time saved by one CP-SAT "
                     "repair of its neighbourhood in the heuristic's placement, measured",
           "repair_late": "LNS centre ranking where the ablation's LNS starts: per sampled centre "
                          "buffer of that placement, the time saved by one CP-SAT repair of its "
                          "neighbourhood, measured",
           "differ": "jump neighbourhoods: per candidate buffer of the ablation's LNS start, "
                     "whether CP-SAT's better placement (hinted with it) re-decides it"}
LOSSES = {"improves": "balanced cross-entropy against 'lowers the time'",
          "graded": "balanced cross-entropy against 1/2 + 1/2 x gain / best gain",
          "listwise": "ListNet: softmax of the logits against the gains normalized to sum 1",
          "rate": "ListNet: softmax of the logits against the gains per second of repair "
                  "normalized to sum 1"}


def label_one(name: str, positions: int, seed: int, after: int = 0,
              xla_top: int = 0) -> dict[str, Any]:
    """The move-gain labels of one instance's episode (the heuristic's, or after ``after``
    improvements): positions (in XLA order: a seeded sample of ``positions``, all if fewer,
    and the first ``xla_top``), each one's best fraction of time saved (None where no
    alternative fits) and the episode's fast-memory mask."""
    from mlsysgym.agents.learned_malloc import move_gains
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir.workloads import MallocInstanceSpec

    problem = make_problem(MallocInstanceSpec.from_name(name).problem_spec())
    inst = problem.instance
    n = inst.n_buffers
    rng = np.random.default_rng([seed, n])
    pos = np.arange(n) if n <= positions else np.sort(rng.choice(n, positions, replace=False))
    pos = np.union1d(pos, np.arange(min(xla_top, n)))
    gains, fast = move_gains(inst, pos, n_offsets=problem.n_offsets, after=after)
    return {"name": name, "capacity_bytes": int(inst.capacity_bytes), "n_buffers": int(n),
            "after": after, "fast": fast.astype(np.int8).tolist(), "positions": pos.tolist(),
            "gains": [None if np.isnan(g) else float(g) for g in gains],
            "pid": os.getpid(), "cpu_s": time.process_time()}


def label_repairs(name: str, centres: int, seed: int, after: int = 0,
                  late: bool = False) -> dict[str, Any]:
    """The neighbourhood labels of one instance: from the heuristic's placement (or with
    ``after`` > 0 that of :func:`mlsysgym.agents.learned_malloc.improved_episode`, ``after``
    improvements; with ``late``, where the ablation's LNS starts in a 10-s run,
    :func:`mlsysgym.agents.learned_malloc.lns_start`), the time one LNS repair around each of
    ``centres`` seeded candidate centres saves (:func:`mlsysgym.agents.malloc_lns.repair_gain`),
    as :func:`label_one`'s rows (positions in XLA order)."""
    from mlsysgym.agents.learned_malloc import GREEDY, improved_episode, lns_start, start_episode
    from mlsysgym.agents.malloc_lns import candidates, repair_gain
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir.workloads import MallocInstanceSpec
    from mlsysgym.simulators.memory import SLOW, xla_order

    problem = make_problem(MallocInstanceSpec.from_name(name).problem_spec())
    inst, n = problem.instance, problem.instance.n_buffers
    rng = np.random.default_rng([seed, n, after])
    if late:
        start = lns_start(problem, seed)
    else:
        builder, best, best_t = start_episode(inst, xla_order(inst))
        if after > 0:
            best, _ = improved_episode(builder, best, best_t, problem.n_offsets, after, 256)
        builder.run(GREEDY, prefix=best)
        start = builder.state.placement
    cand = np.flatnonzero(candidates(inst, start))
    picked = cand if len(cand) <= centres else rng.choice(cand, centres, replace=False)
    rank = np.empty(n, np.int64)
    rank[xla_order(inst)] = np.arange(n)
    gains, seconds = [], []
    for c in picked:
        t0 = time.perf_counter()
        gains.append(repair_gain(inst, start, int(c), rng))
        seconds.append(time.perf_counter() - t0)
    return {"name": name, "capacity_bytes": int(inst.capacity_bytes), "n_buffers": int(n),
            "after": after, "kind": "repair", "fast": (start.mode != SLOW).astype(np.int8).tolist(),
            "positions": rank[picked].tolist(), "gains": gains, "seconds": seconds,
            "pid": os.getpid(), "cpu_s": time.process_time()}


def label_differ(name: str, cpsat_s: float, seed: int) -> dict[str, Any]:
    """The jump labels of one instance: from the placement where the ablation's LNS starts in
    a 10-s run (:func:`mlsysgym.agents.learned_malloc.lns_start`), CP-SAT hinted with it for
    ``cpsat_s`` seconds; every candidate buffer (:func:`mlsysgym.agents.malloc_lns.candidates`)
    labelled with the fraction of the time CP-SAT's placement saves if it is fast in one and
    slow in the other, 0 if not (so a network learns which buffers a better placement
    re-decides), as :func:`label_one`'s rows (positions in XLA order)."""
    from mlsysgym.agents.learned_malloc import lns_start
    from mlsysgym.agents.malloc_baselines import cpsat_optimum
    from mlsysgym.agents.malloc_lns import candidates, total_time
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir.workloads import MallocInstanceSpec
    from mlsysgym.simulators.memory import SLOW, xla_order

    problem = make_problem(MallocInstanceSpec.from_name(name).problem_spec())
    inst, n = problem.instance, problem.instance.n_buffers
    start = lns_start(problem, seed)
    better = cpsat_optimum(inst, time_limit_s=cpsat_s, num_workers=1, hint=start,
                           seed=seed).placement
    t0, t1 = total_time(inst, start.mode), total_time(inst, better.mode)
    cand = np.flatnonzero(candidates(inst, start))
    differs = (start.mode[cand] != SLOW) != (better.mode[cand] != SLOW)
    gain = max(t0 - t1, 0.0) / t0
    rank = np.empty(n, np.int64)
    rank[xla_order(inst)] = np.arange(n)
    return {"name": name, "capacity_bytes": int(inst.capacity_bytes), "n_buffers": int(n),
            "after": 0, "kind": "differ", "fast": (start.mode != SLOW).astype(np.int8).tolist(),
            "positions": rank[cand].tolist(),
            "gains": np.where(differs & (gain > 0), gain, 0.0).tolist(),
            "pid": os.getpid(), "cpu_s": time.process_time()}


def make_labels(names: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Labels of every instance, ``args.workers`` processes, progress on stderr."""
    out = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        if args.moves == "differ":
            futs = [pool.submit(label_differ, n, args.cpsat_s, args.seed) for n in names]
        elif args.moves in ("repair", "repair_late"):
            futs = [pool.submit(label_repairs, n, args.positions, args.seed, k,
                                args.moves == "repair_late") for n in names for k in args.episodes]
        else:
            futs = [pool.submit(label_one, n, args.positions, args.seed, k, args.xla_top)
                    for n in names for k in args.episodes]
        for i, f in enumerate(futs):
            row = f.result()
            out.append(row)
            g = np.array([np.nan if v is None else v for v in row["gains"]])
            print(f"[labels {i + 1}/{len(futs)}] {row['name']} after {row['after']}: "
                  f"{len(g)} moves, "
                  f"{int((g > 1e-12).sum())} improve (best {100 * np.nanmax(g, initial=0):.3f} %)",
                  file=sys.stderr, flush=True)
    return out


def label_cpu_s(labels: list[dict[str, Any]], workers: int) -> float:
    """CPU seconds the labels took: each worker's last cumulative ``cpu_s``, summed (labels
    without ``pid``: the ``workers`` largest values)."""
    last: dict[Any, float] = {}
    for r in labels:
        last[r.get("pid")] = max(last.get(r.get("pid"), 0.0), float(r["cpu_s"]))
    if None in last:
        return float(sum(sorted((float(r["cpu_s"]) for r in labels), reverse=True)[:workers]))
    return float(sum(last.values()))


def _graphs(labels: list[dict[str, Any]], target: str = "improves") -> list[tuple[Any, ...]]:
    """The network's inputs of the labelled instances (which must be built as when labelled),
    the labelled buffers and their targets (``improves``: 1 if the move lowers the time;
    ``graded``: 1/2 + 1/2 × its gain ÷ the instance's best gain; ``listwise``: the time it
    saves, 0 if none; ``rate``: that per second of its repair)."""
    import torch
    from mlsysgym.agents.learned_malloc import NODE_FEATURES, instance_graph
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.core.errors import MlsysgymError
    from mlsysgym.ir.workloads import MallocInstanceSpec
    from mlsysgym.simulators.memory import xla_order

    out = []
    for row in labels:
        inst = make_problem(MallocInstanceSpec.from_name(row["name"]).problem_spec()).instance
        if (inst.capacity_bytes, inst.n_buffers) != (row["capacity_bytes"], row["n_buffers"]):
            raise MlsysgymError(f"labels of {row['name']} were made for another instance "
                                "(capacity or buffers differ); make new labels")
        order = xla_order(inst)
        x, ei, ea = instance_graph(inst, order)
        if "fast" in row:  # the labelled episode's decisions (the heuristic's when after = 0)
            x = x.copy()
            x[:, NODE_FEATURES.index("heuristic_fast")] = row["fast"]
        buffers = torch.from_numpy(order[np.asarray(row["positions"], np.int64)])
        g = np.array([np.nan if v is None else v for v in row["gains"]])
        gain = np.where(np.isfinite(g), g, 0.0)
        y = (gain > 1e-12).astype(np.float32)
        if target == "listwise":
            y = np.where(gain > 1e-12, gain, 0.0)
        elif target == "rate":  # what a time-budgeted LNS gains per second spent on the centre
            if "seconds" not in row:
                raise MlsysgymError(f"labels of {row['name']} have no repair times; make new "
                                    "labels for --target rate")
            y = np.where(gain > 1e-12, gain / np.asarray(row["seconds"], np.float64), 0.0)
        elif target == "graded":  # 1/2 for every improving move, + 1/2 × its gain relative to the best one
            y = y * (0.5 + 0.5 * np.clip(gain, 0.0, None) / max(gain.max(), 1e-30))
        y = torch.from_numpy(y.astype(np.float32))
        out.append((torch.from_numpy(x), torch.from_numpy(ei), torch.from_numpy(ea), buffers, y))
    return out


def train(labels: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Any, list[float]]:
    """The trained network and its loss per epoch."""
    import torch
    from mlsysgym.agents.gnn import build_graph_net
    from mlsysgym.agents.learned_malloc import EDGE_FEATURES, NODE_FEATURES

    torch.set_num_threads(1)  # small graphs: threads only contend
    graphs = [g for g in _graphs(labels, args.target)
              if 0 < int((g[4] > 0).sum()) < len(g[4])]  # both classes
    net = build_graph_net(len(NODE_FEATURES), len(EDGE_FEATURES), hidden=args.hidden,
                          rounds=args.rounds, seed=args.seed)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-5)
    rng = np.random.default_rng(args.seed)
    history = []
    for epoch in range(args.epochs):
        total = 0.0
        for j in rng.permutation(len(graphs)):
            x, ei, ea, buffers, y = graphs[j]
            logits, _ = net(x, ei, ea)
            if args.target in ("listwise", "rate"):
                loss = -(y / y.sum() * torch.log_softmax(logits[buffers, 0], 0)).sum()
            else:
                pos = float((y > 0).sum())
                weight = torch.where(y > 0, 0.5 / pos, 0.5 / (len(y) - pos))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits[buffers, 0], y, weight=weight, reduction="sum")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        history.append(total / len(graphs))
        if epoch % 10 == 0 or epoch == args.epochs - 1:
            print(f"[train {epoch + 1}/{args.epochs}] loss {history[-1]:.4f}", file=sys.stderr,
                  flush=True)
    return net, history


def _untrained(out_dir: Path, args: argparse.Namespace) -> Path:
    """An untrained network of the same shape (the control), ONNX + card in ``out_dir``."""
    from mlsysgym.agents.gnn import build_graph_net, export_onnx
    from mlsysgym.agents.learned_malloc import EDGE_FEATURES, NODE_FEATURES

    path = out_dir / "untrained_malloc_gnn.onnx"
    net = build_graph_net(len(NODE_FEATURES), len(EDGE_FEATURES), hidden=args.hidden,
                          rounds=args.rounds, seed=args.seed)
    export_onnx(net, path, len(NODE_FEATURES), len(EDGE_FEATURES))
    write_card(path, {"format": 1, "policy": "untrained control", "kind": "malloc"})
    return path


def validate(onnx_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``learned`` vs ``learned_no_network`` vs the untrained control on the validation split
    (the three interleaved per instance and seed)."""
    import tempfile

    from mlsysgym.agents import Budget, search
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir import workloads

    seconds = args.val_seconds
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        learned = {"rescore": args.rescore}
        if args.moves == "change":  # a move policy orders the local search alone
            learned["lns_share"] = 0.0
        arms = (("learned", "learned", {"policy": str(onnx_path), **learned}),
                ("no_network", "learned_no_network",
                 {"lns_share": 0.0} if args.moves == "change" else {}),
                ("untrained", "learned", {"policy": str(_untrained(Path(tmp), args)),
                                          **learned}))
        for seed in range(args.val_seeds):
            for spec in workloads.malloc_instances("validation"):
                row: dict[str, Any] = {"instance": spec.name, "seed": seed}
                for arm, agent, hp in arms:
                    problem = make_problem(spec.problem_spec())
                    res = search(agent, problem, Budget(seconds=seconds + 30), seed=seed,
                                 time_limit_s=seconds, **hp)
                    row[arm] = float(res.metrics[res.best_index]["improvement"])
                rows.append(row)
                print(f"[validation seed {seed}] {spec.name}: learned {row['learned']:.5f}, "
                      f"no network {row['no_network']:.5f}, untrained {row['untrained']:.5f}",
                      file=sys.stderr, flush=True)
    out: dict[str, Any] = {"seconds": seconds, "rescore": args.rescore, "seeds": list(range(args.val_seeds)), "rows": rows,
                           "metric": "difference of the fraction of the all-slow time saved"}
    for other in ("no_network", "untrained"):
        diff = np.array([r["learned"] - r[other] for r in rows])
        out[f"vs_{other}"] = {"mean_difference": float(diff.mean()),
                              "wins": int((diff > 1e-12).sum()),
                              "losses": int((diff < -1e-12).sum()), "runs": len(diff)}
    return out


def write_card(onnx_path: Path, card: dict[str, Any]) -> None:
    from mlsysgym.agents.learned_malloc import EDGE_FEATURES, NODE_FEATURES
    from mlsysgym.agents.policies import file_sha256
    from mlsysgym.core.target import fingerprint

    card.update(onnx_sha256=file_sha256(onnx_path), node_features=list(NODE_FEATURES),
                edge_features=list(EDGE_FEATURES), fingerprint=fingerprint())
    onnx_path.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="ONNX file (card beside it)")
    ap.add_argument("--positions", type=int, default=256,
                    help="moves labelled per training instance (all positions if fewer)")
    ap.add_argument("--xla-top", type=int, default=0,
                    help="also label the first N positions in XLA order")
    ap.add_argument("--episodes", type=lambda v: [int(k) for k in v.split(",")], default=[0],
                    help="labelled episodes per instance: improvements first made (0: the "
                         "heuristic's), comma-separated, e.g. 0,8")
    ap.add_argument("--moves", choices=tuple(METHODS), default="change",
                    help="what is labelled: changing one buffer's decision (the local "
                         "search's moves), an LNS repair centred on it (--positions centres), "
                         "or whether a better placement (CP-SAT, --cpsat-s) re-decides it")
    ap.add_argument("--cpsat-s", type=float, default=20.0,
                    help="--moves differ: CP-SAT's seconds per training instance")
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--target", choices=tuple(LOSSES), default="improves",
                    help="per labelled move: 1 if it lowers the time, graded by its gain, or "
                         "its gain (listwise) or gain per second of repair (rate) ranked "
                         "against the instance's other moves (ListNet)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="label processes")
    ap.add_argument("--val-seconds", type=float, default=3.0)
    ap.add_argument("--val-seeds", type=int, default=1)
    ap.add_argument("--rescore", action="store_true",
                    help="validate `learned` with rescore=True (the network re-run every pass)")
    ap.add_argument("--labels", type=Path, default=None, help="JSON of labels to reuse")
    ap.add_argument("--labels-out", type=Path, default=DEFAULT_LABELS,
                    help="where new labels are written")
    ap.add_argument("--limit", type=int, default=None, help="first N training instances only")
    ap.add_argument("--capacities", type=float, nargs="+", default=None,
                    help="fast-memory fractions of the training instances (default 0.25 0.5 1)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from mlsysgym.agents.gnn import export_onnx
    from mlsysgym.agents.learned_malloc import EDGE_FEATURES, NODE_FEATURES
    from mlsysgym.ir import workloads

    args = _args(argv)
    t0, c0 = time.perf_counter(), cpu_seconds()
    caps = tuple(args.capacities or workloads.MALLOC_CAPACITIES)
    names = [s.name for s in workloads.malloc_instances("train", caps)][: args.limit]
    if args.labels is not None:
        labels = json.loads(args.labels.read_text())
        names = list(dict.fromkeys(r["name"] for r in labels))
    else:
        labels = make_labels(names, args)
        args.labels_out.parent.mkdir(parents=True, exist_ok=True)
        args.labels_out.write_text(json.dumps(labels))
    c_labels = label_cpu_s(labels, args.workers)
    c0 = cpu_seconds()
    net, history = train(labels, args)
    c_train = cpu_seconds() - c0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(net, args.out, len(NODE_FEATURES), len(EDGE_FEATURES))
    card = {"format": 1, "policy": args.out.stem, "kind": "malloc",
            "training": {"method": METHODS[args.moves] + "; loss " + LOSSES[args.target],
                         "moves": args.moves,
                         "split": "train", "splits_version": workloads.SPLITS_VERSION,
                         "splits_digest": workloads.splits_digest(), "instances": names,
                         "positions": args.positions, "xla_top": args.xla_top,
                         "episodes": args.episodes,
                         "labelled_moves": sum(
                             len(r["gains"]) for r in labels),
                         "improving_moves": sum(g is not None and g > 1e-12
                                                for r in labels for g in r["gains"]),
                         "target": args.target, "seeds": [args.seed], "epochs": args.epochs, "hidden": args.hidden,
                         "rounds": args.rounds, "lr": args.lr,
                         "final_loss": history[-1] if history else None,
                         "labels_reused": args.labels is not None},
            "cpu_seconds": {"labels": c_labels, "training": c_train}}
    write_card(args.out, card)
    if args.val_seeds > 0:
        c1 = cpu_seconds()
        card["validation"] = validate(args.out, args)
        card["cpu_seconds"].update(validation=cpu_seconds() - c1)
    card["cpu_seconds"]["total"] = sum(card["cpu_seconds"].values())
    card["cpu_hours"] = card["cpu_seconds"]["total"] / 3600.0
    card["wall_seconds"] = time.perf_counter() - t0
    write_card(args.out, card)
    msg = f"wrote {args.out} and its card: {card['cpu_hours']:.3f} CPU hours"
    for other in ("no_network", "untrained"):
        v = card.get("validation", {}).get(f"vs_{other}")
        if v:
            msg += (f"; validation learned - {other} = {v['mean_difference']:+.5f} (wins "
                    f"{v['wins']}, losses {v['losses']} of {v['runs']})")
    print(msg, file=sys.stderr)


if __name__ == "__main__":
    main()
