"""Train the mallocGame graph-network policy over the training split and ship it as ONNX + card.

    python -m mlsysgym.experiments.train_malloc_policy [--label-seconds 6] [--cpsat-seconds 8]
        [--epochs 150] [--workers 2] [--out results/policies/malloc_gnn.onnx]

1. **Labels** (imitation of the best known placement): for every training instance
   (:func:`mlsysgym.ir.workloads.malloc_instances` ``("train")``), the network-free search
   ``learned_no_network`` runs ``--label-seconds``, then CP-SAT runs ``--cpsat-seconds`` with
   that placement as its hint (so it can only improve on it); the label of a buffer is 1 when
   the better placement puts it in fast memory.
2. **Training**: :func:`mlsysgym.agents.gnn.build_graph_net` on
   :func:`mlsysgym.agents.learned_malloc.instance_graph`, full-graph Adam steps, loss =
   per-graph mean binary cross-entropy of the per-node logit + 0.1 × squared error of the value
   head against the label placement's fraction of time saved.
3. **Validation**: ``learned`` (with the new network) against ``learned_no_network`` on the
   validation split at ``--val-seconds`` each (seed 0): mean and per-instance differences of
   the time saved, recorded in the card.
4. Writes the ONNX file and its JSON card (splits version and digest, instances, seeds, CPU
   seconds of every step, the target fingerprint of this machine, validation numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

# Under the working directory, never the installed package; the repository's shipped policy
# was written with --out agents/policies/malloc_gnn.onnx
# --labels-out benchmarks/results/learned_malloc_labels.json.
DEFAULT_OUT = Path("results") / "policies" / "malloc_gnn.onnx"
DEFAULT_LABELS = Path("results") / "policies" / "malloc_labels.json"


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _instance(name: str) -> Any:
    from mlsysgym.ir import workloads

    model, cap = name.rsplit(":", 1)
    return workloads.MallocInstanceSpec(workloads.workload(model), float(cap))


def label_one(name: str, label_seconds: float, cpsat_seconds: float, seed: int) -> dict[str, Any]:
    """The label placement of one instance: best of the network-free search and CP-SAT hinted
    with it. Returns the fast-memory mask and the sources' times."""
    from mlsysgym.agents import Budget, search
    from mlsysgym.agents.malloc_baselines import cpsat_optimum
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.agents.sequential import replay_episode
    from mlsysgym.simulators.memory import FAST

    problem = make_problem(_instance(name).problem_spec())
    res = search("learned_no_network", problem, Budget(seconds=label_seconds + 30), seed=seed,
                 time_limit_s=label_seconds)
    env = problem.make_env()
    replay_episode(env, res.best_design["actions"])
    hint = env.placement
    search_us = float(res.metrics[res.best_index]["time_us"])
    sol = cpsat_optimum(problem.instance, time_limit_s=cpsat_seconds, num_workers=1, hint=hint,
                        seed=seed)
    fast = sol.placement.mode == FAST
    return {"name": name, "capacity_bytes": int(problem.instance.capacity_bytes),
            "n_buffers": int(problem.instance.n_buffers),
            "fast": fast.astype(np.int8).tolist(), "search_us": search_us,
            "cpsat_us": float(sol.time_us), "cpsat_status": sol.status,
            "all_slow_us": float(problem.instance.all_slow_time_us),
            "improvement": float(sol.improvement), "pid": os.getpid(),
            "cpu_s": time.process_time()}


def make_labels(names: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Labels of every instance, ``args.workers`` processes, progress on stderr."""
    out = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futs = [pool.submit(label_one, n, args.label_seconds, args.cpsat_seconds, args.seed)
                for n in names]
        for i, f in enumerate(futs):
            row = f.result()
            out.append(row)
            gain = (row["search_us"] - row["cpsat_us"]) / row["search_us"]
            print(f"[labels {i + 1}/{len(names)}] {row['name']}: search {row['search_us']:.1f} us, "
                  f"cpsat {row['cpsat_us']:.1f} us ({row['cpsat_status']}, {100 * gain:+.3f} %)",
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


def _graphs(labels: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The network's inputs of the labelled instances (which must be built as when labelled)."""
    import torch
    from mlsysgym.agents.learned_malloc import instance_graph
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.core.errors import MlsysgymError
    from mlsysgym.simulators.memory import xla_order

    out = []
    for row in labels:
        inst = make_problem(_instance(row["name"]).problem_spec()).instance
        if (inst.capacity_bytes, inst.n_buffers) != (row["capacity_bytes"], row["n_buffers"]):
            raise MlsysgymError(f"labels of {row['name']} were made for another instance "
                                "(capacity or buffers differ); make new labels")
        x, ei, ea = instance_graph(inst, xla_order(inst))
        out.append((torch.from_numpy(x), torch.from_numpy(ei), torch.from_numpy(ea)))
    return out


def train(labels: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Any, list[float]]:
    """The trained network and its loss per epoch."""
    import torch
    from mlsysgym.agents.gnn import build_graph_net
    from mlsysgym.agents.learned_malloc import EDGE_FEATURES, NODE_FEATURES

    torch.set_num_threads(1)  # small graphs: threads only contend
    graphs = _graphs(labels)
    ys = [torch.tensor(r["fast"], dtype=torch.float32) for r in labels]
    vs = [torch.tensor([r["improvement"]], dtype=torch.float32) for r in labels]
    net = build_graph_net(len(NODE_FEATURES), len(EDGE_FEATURES), hidden=args.hidden,
                          rounds=args.rounds, seed=args.seed)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-5)
    rng = np.random.default_rng(args.seed)
    bce = torch.nn.BCEWithLogitsLoss()
    history = []
    for epoch in range(args.epochs):
        total = 0.0
        for j in rng.permutation(len(graphs)):
            logits, value = net(*graphs[j])
            loss = bce(logits[:, 0], ys[j]) + 0.1 * ((value - vs[j]) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        history.append(total / len(graphs))
        if epoch % 10 == 0 or epoch == args.epochs - 1:
            print(f"[train {epoch + 1}/{args.epochs}] loss {history[-1]:.4f}", file=sys.stderr,
                  flush=True)
    return net, history


def validate(onnx_path: Path, seconds: float) -> dict[str, Any]:
    """``learned`` vs ``learned_no_network`` on the validation split (seed 0)."""
    from mlsysgym.agents import Budget, search
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir import workloads

    rows = []
    for spec in workloads.malloc_instances("validation"):
        row = {"instance": spec.name}
        for agent, hp in (("learned", {"policy": str(onnx_path)}), ("learned_no_network", {})):
            problem = make_problem(spec.problem_spec())
            res = search(agent, problem, Budget(seconds=seconds + 30), seed=0, time_limit_s=seconds,
                         **hp)
            row[agent] = float(res.metrics[res.best_index]["improvement"])
        rows.append(row)
        print(f"[validation] {spec.name}: learned {row['learned']:.5f}, no network "
              f"{row['learned_no_network']:.5f}", file=sys.stderr, flush=True)
    diff = np.array([r["learned"] - r["learned_no_network"] for r in rows])
    return {"seconds": seconds, "rows": rows, "mean_difference": float(diff.mean()),
            "wins": int((diff > 1e-12).sum()), "losses": int((diff < -1e-12).sum())}


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
    ap.add_argument("--label-seconds", type=float, default=6.0,
                    help="network-free search per training instance")
    ap.add_argument("--cpsat-seconds", type=float, default=8.0,
                    help="CP-SAT per training instance, hinted with the search's placement")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="label processes")
    ap.add_argument("--val-seconds", type=float, default=3.0)
    ap.add_argument("--labels", type=Path, default=None, help="JSON of labels to reuse")
    ap.add_argument("--labels-out", type=Path, default=DEFAULT_LABELS,
                    help="where new labels are written")
    ap.add_argument("--limit", type=int, default=None, help="first N training instances only")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from mlsysgym.agents.gnn import export_onnx
    from mlsysgym.agents.learned_malloc import EDGE_FEATURES, NODE_FEATURES
    from mlsysgym.ir import workloads

    args = _args(argv)
    t0, c0 = time.perf_counter(), _cpu_s()
    names = [s.name for s in workloads.malloc_instances("train")][: args.limit]
    if args.labels is not None:
        labels = json.loads(args.labels.read_text())
        names = [r["name"] for r in labels]
    else:
        labels = make_labels(names, args)
        args.labels_out.parent.mkdir(parents=True, exist_ok=True)
        args.labels_out.write_text(json.dumps(labels))
    c_labels = label_cpu_s(labels, args.workers)
    c0 = _cpu_s()
    net, history = train(labels, args)
    c_train = _cpu_s() - c0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(net, args.out, len(NODE_FEATURES), len(EDGE_FEATURES))
    card = {"format": 1, "policy": "malloc_gnn", "kind": "malloc",
            "training": {"method": "imitation of the best known placement (network-free search, "
                                   "then CP-SAT hinted with it)",
                         "split": "train", "splits_version": workloads.SPLITS_VERSION,
                         "splits_digest": workloads.splits_digest(), "instances": names,
                         "label_seconds": args.label_seconds, "cpsat_seconds": args.cpsat_seconds,
                         "seeds": [args.seed], "epochs": args.epochs, "hidden": args.hidden,
                         "rounds": args.rounds, "lr": args.lr, "final_loss": history[-1] if history else None,
                         "labels_reused": args.labels is not None},
            "cpu_seconds": {"labels": c_labels, "training": c_train}}
    write_card(args.out, card)
    c1 = _cpu_s()
    card["validation"] = validate(args.out, args.val_seconds)
    card["cpu_seconds"].update(validation=_cpu_s() - c1)
    card["cpu_seconds"]["total"] = sum(card["cpu_seconds"].values())
    card["cpu_hours"] = card["cpu_seconds"]["total"] / 3600.0
    card["wall_seconds"] = time.perf_counter() - t0
    write_card(args.out, card)
    v = card["validation"]
    print(f"wrote {args.out} and its card: {card['cpu_hours']:.3f} CPU hours; validation "
          f"learned - no network = {v['mean_difference']:+.5f} (wins {v['wins']}, losses "
          f"{v['losses']} of {len(v['rows'])})", file=sys.stderr)


if __name__ == "__main__":
    main()
