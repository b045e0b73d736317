"""Train the learned list scheduler across graphs (issue #21) and write its ONNX file and card.

The policy (:mod:`mlsysgym.agents.learned_schedule`) scores ops and (op, PE) pairs; a list
scheduler decodes the scores into a schedule. The decode is not differentiable and the target
is the makespan itself, so the network is trained by evolution strategies (OpenAI-ES:
antithetic Gaussian perturbations of the weights, centred-rank fitness, a gradient step —
plain or Adam — on the estimate) to minimize the mean over the training instances of the
greedy makespan relative to HEFT's. The network starts at HEFT's order with PEFT's lookahead (zero heads); each
``--eval-every`` iterations the greedy policy is measured on the validation split and the
weights with the best validation mean are kept (model selection on families absent from
training and from the test split).

What we saw (``benchmarks/results/learned_schedule.md``): the starting point is a sharp
optimum of this objective. Perturbations of more than a few hundredths of an op's time in the
scores reorder or move ops for the worse on most graphs, so ES with σ ≥ 0.01 or with Adam drifted
away from it (validation worse than the start at every checkpoint); with σ = 0.005 and plain
steps the weights stay near it and validation moves by hundredths of a percent (+0.913 % vs
HEFT against +0.908 % untrained). On the test split the shipped weights are slightly *worse*
than their untrained start (greedy +0.43 % vs +0.49 %; with the agent's search −0.10 %): this
training adds nothing; the policy's gain over HEFT is the lookahead feature.

``--method imitation`` (behaviour cloning of searched schedules) and ``--method rollout``
(rollout labels, one step of policy iteration) train on labelled decisions instead
(:mod:`mlsysgym.experiments.schedule_imitation`), with the same model selection. None of
them beat the untrained start on validation either; they are compared with ES and with
MaskablePPO across graphs in ``benchmarks/results/schedule_training.md`` (made by
``benchmarks/bench_schedule_training.py``; the runs there used ``--lr 0.003 --epochs 80
--eval-every 10``, imitation with ``--expert-seconds 8 --workers 1``, rollout with
``--rollout-steps 64``).

Instances: every workload of the train / validation split of :mod:`mlsysgym.ir.workloads`
on every ``--platforms`` platform (graphs over ``--max-ops`` ops are left out of training).

Usage::

    nice -n 19 python experiments/train_schedule_policy.py  # the shipped policy's settings

writes ``schedule_gnn.onnx`` and ``schedule_gnn.json`` (the card: split version and digest,
instances, platforms, seed, ES settings, the training curve, validation results, CPU hours,
the machine's fingerprint).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents.learned_schedule import (
    FEATURES,
    PE_FEATURES,
    build_network,
    decode,
    edge_lists,
    export_onnx,
    heft_scores,
    instance_scale,
    op_features,
)
from mlsysgym.agents.scheduling_problem import BALANCED_PLATFORM
from mlsysgym.core.target import cpu_seconds, provenance
from mlsysgym.ir import workloads
from mlsysgym.simulators.multicore import SchedulingInstance, build_instance, load_platform

# Under the working directory, never the installed package; the repository's shipped policy
# was written with --out agents/policies/schedule_gnn.onnx.
DEFAULT_OUT = Path("results") / "policies" / "schedule_gnn.onnx"


@dataclass
class _Case:
    """One training/validation instance with its inputs prepared once."""

    name: str
    instance: SchedulingInstance
    tensors: tuple[Any, Any, Any, Any]
    scale: float
    heft_us: float
    window: int


def _platform(name: str) -> Any:
    return load_platform(BALANCED_PLATFORM if name == "balanced" else name)


def cases(split: str, platforms: Sequence[str], max_ops: int | None = None) -> list[_Case]:
    """The split's workloads on each platform, with features, edges and HEFT's makespan."""
    import torch

    out = []
    for spec in workloads.split(split):
        graph = spec.build()
        for plat in platforms:
            inst = build_instance(graph, _platform(plat))
            if max_ops is not None and inst.n_ops > max_ops:
                continue
            x, pe = op_features(inst)
            src, dst = edge_lists(inst)
            pr, _ = heft_scores(inst)
            out.append(_Case(f"{spec.name}@{plat}", inst,
                             (torch.from_numpy(x), torch.from_numpy(pe), torch.from_numpy(src),
                              torch.from_numpy(dst)),
                             instance_scale(inst), decode(inst, pr).makespan_us(inst),
                             workloads.SCHEDULING_WINDOW.get(spec.family, 16)))
    return out


def ratios(net: Any, data: Sequence[_Case]) -> np.ndarray:
    """Greedy makespan / HEFT makespan of ``net`` on every case."""
    import torch

    out = np.empty(len(data))
    with torch.no_grad():
        for k, c in enumerate(data):
            pr, b = net(*c.tensors)
            sched = decode(c.instance, pr.numpy().astype(np.float64),
                           b.numpy().astype(np.float64) * c.scale)
            out[k] = sched.makespan_us(c.instance) / c.heft_us
    return out


def _centred_ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(x.size)
    r[np.argsort(x)] = np.arange(x.size)
    return r / (x.size - 1) - 0.5


def train(net: Any, train_cases: Sequence[_Case], val_cases: Sequence[_Case], iterations: int,
          population: int, sigma: float, lr: float, seed: int, eval_every: int,
          batch: int, train_priority: bool = False, optimizer: str = "sgd",
          log: Any = print) -> dict[str, Any]:
    """OpenAI-ES on the mean log ratio over ``batch`` training instances drawn each iteration
    (the same for the whole population); keeps the weights of the best validation mean. The
    priority head stays at zero (HEFT's order) unless ``train_priority``.
    Returns the training record (curve, best iteration, validation ratios)."""
    import torch
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    rng = np.random.default_rng(seed)
    params = [p for name, p in net.named_parameters() if train_priority or not name.startswith("priority.")]
    theta = parameters_to_vector(params).detach().numpy().astype(np.float64)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    b1, b2 = 0.9, 0.999

    def load(vec: np.ndarray) -> None:
        vector_to_parameters(torch.from_numpy(vec.astype(np.float32)), params)

    def fitness(vec: np.ndarray, data: Sequence[_Case] = train_cases) -> float:
        load(vec)
        return float(np.mean(np.log(ratios(net, data))))

    val0 = ratios(net, val_cases)
    best = {"iteration": 0, "val_mean": float(np.mean(val0)), "theta": theta.copy()}
    curve = [{"iteration": 0, "train_log_ratio": fitness(theta), "val_mean_ratio": best["val_mean"]}]
    log(f"it 0: train log-ratio {curve[0]['train_log_ratio']:+.5f}, val ratio {best['val_mean']:.5f}")
    half = population // 2
    t0 = time.perf_counter()
    for it in range(1, iterations + 1):
        eps = rng.standard_normal((half, theta.size))
        pick = rng.choice(len(train_cases), size=min(batch, len(train_cases)), replace=False)
        data = [train_cases[k] for k in pick]
        f = np.array([fitness(theta + s * sigma * e, data) for e in eps for s in (1.0, -1.0)])
        w = _centred_ranks(-f)  # lower makespan ratio = fitter
        grad = ((w[0::2] - w[1::2]) @ eps) / (population * sigma)
        if optimizer == "adam":
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad**2
            theta = theta + lr * (m / (1 - b1**it)) / (np.sqrt(v / (1 - b2**it)) + 1e-8)
        else:  # plain gradient ascent: steps shrink where the estimate is small
            theta = theta + lr * grad
        rec: dict[str, Any] = {"iteration": it, "population_mean_log_ratio": float(f.mean())}
        if it % eval_every == 0 or it == iterations:
            rec["train_log_ratio"] = fitness(theta)
            val = ratios(net, val_cases)
            rec["val_mean_ratio"] = float(np.mean(val))
            if rec["val_mean_ratio"] < best["val_mean"]:
                best = {"iteration": it, "val_mean": rec["val_mean_ratio"], "theta": theta.copy()}
            log(f"it {it}: train log-ratio {rec['train_log_ratio']:+.5f}, val ratio "
                f"{rec['val_mean_ratio']:.5f} (best {best['val_mean']:.5f} @ {best['iteration']}), "
                f"{time.perf_counter() - t0:.0f} s")
        curve.append(rec)
    load(best["theta"])
    return {"curve": curve, "best_iteration": best["iteration"],
            "val_ratios_init": val0.tolist(), "val_ratios": ratios(net, val_cases).tolist()}


def _train_labelled(net: Any, train_cases: Sequence[_Case], val_cases: Sequence[_Case],
                    args: argparse.Namespace, log: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--method imitation`` or ``rollout``: label decisions, then Adam on the labels
    (:mod:`mlsysgym.experiments.schedule_imitation`); the record and the card's method entry."""
    from mlsysgym.agents.learned_schedule import torch_scores
    from mlsysgym.experiments import schedule_imitation as si

    def evaluate() -> np.ndarray:
        return ratios(net, val_cases)

    train_priority = not args.freeze_priority
    if args.method == "imitation":
        experts = (si.load_experts(args.experts, [c.name for c in train_cases])
                   if args.experts and args.experts.is_file() else None)
        if experts is None:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                prior = str(export_onnx(build_network(args.rounds), Path(tmp) / "prior.onnx"))
                jobs = [(c.name, c.instance, _platform(c.name.rpartition("@")[2]), c.window)
                        for c in train_cases]
                experts = si.expert_schedules(jobs, args.expert_seconds, prior, args.workers,
                                              args.seed, log)
            if args.experts:
                si.save_experts(args.experts, experts, provenance(command="train_schedule_policy.py"))
        labelled = [(c.tensors, si.forcing_data(c.instance, experts[c.name], c.scale))
                    for c in train_cases]
        gain = np.mean([1 - experts[c.name]["makespan_us"] / c.heft_us for c in train_cases])
        log(f"experts: {100 * gain:+.3f} % vs HEFT on average")
        record = si.train_imitation(net, labelled, evaluate, args.epochs, args.lr,
                                    args.eval_every, train_priority, log=log)
        return record, {"method": "imitation of searched schedules (expected regret of the "
                                  "expert's decisions, teacher forcing)",
                        "expert_seconds": args.expert_seconds, "epochs": args.epochs,
                        "expert_gain_vs_heft_pct": 100 * gain, "best_epoch": record["best_epoch"]}
    rng = np.random.default_rng(args.seed)
    records = []
    for r in range(args.rollout_rounds):
        labelled = []
        for c in train_cases:
            pr, b = torch_scores(net, c.instance)
            labelled.append((c.tensors, si.rollout_data(c.instance, pr, b * c.scale, c.scale,
                                                        args.rollout_steps,
                                                        args.rollout_candidates, rng)))
        n_dec = sum(int(f.ready.shape[0] + f.pe_op.shape[0]) for _, f in labelled)
        log(f"round {r + 1}: {n_dec} decisions whose candidates differ")
        records.append(si.train_imitation(net, labelled, evaluate, args.epochs, args.lr,
                                          args.eval_every, train_priority, log=log))
    record = {"curve": [c for rec in records for c in rec["curve"]],
              "val_ratios_init": records[0]["val_ratios_init"], "val_ratios": records[-1]["val_ratios"]}
    return record, {"method": "rollout labels (one-step policy iteration: the makespan of each "
                              "candidate decision followed by the greedy decode; expected regret)",
                    "rounds": args.rollout_rounds, "steps_per_instance": args.rollout_steps,
                    "candidates": args.rollout_candidates, "epochs": args.epochs,
                    "best_epochs": [rec["best_epoch"] for rec in records]}


def _summary(data: Sequence[_Case], r: Sequence[float]) -> dict[str, Any]:
    imp = 100.0 * (1.0 - np.asarray(r))
    return {"instances": [c.name for c in data], "improvement_vs_heft_pct": imp.round(4).tolist(),
            "mean_improvement_vs_heft_pct": float(imp.mean()),
            "better_than_heft": int((imp > 1e-9).sum()), "worse_than_heft": int((imp < -1e-9).sum())}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="ONNX file (card: .json beside it)")
    ap.add_argument("--platforms", nargs="+", default=list(workloads.SCHEDULING_PLATFORMS))
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--population", type=int, default=16, help="even; antithetic pairs")
    ap.add_argument("--sigma", type=float, default=0.005, help="weight perturbation scale")
    ap.add_argument("--lr", type=float, default=0.0005, help="step size")
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    ap.add_argument("--rounds", type=int, default=1, help="message-passing rounds")
    ap.add_argument("--batch-instances", type=int, default=16,
                    help="training instances per iteration (drawn afresh each iteration)")
    ap.add_argument("--max-ops", type=int, default=800, help="largest training graph")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--freeze-priority", action="store_true",
                    help="train only the PE-choice heads (keep HEFT's order)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", choices=["es", "imitation", "rollout"], default="es",
                    help="es: evolution strategies on the makespan; imitation: the decisions of "
                         "searched schedules; rollout: one-step rollout labels (see "
                         "experiments/schedule_imitation.py)")
    ap.add_argument("--epochs", type=int, default=100, help="imitation/rollout: Adam epochs")
    ap.add_argument("--expert-seconds", type=float, default=10.0,
                    help="imitation: the search's seconds per training instance")
    ap.add_argument("--experts", type=Path, default=None,
                    help="imitation: a JSON of expert schedules to reuse (written when absent)")
    ap.add_argument("--workers", type=int, default=2, help="imitation: searches at a time")
    ap.add_argument("--rollout-steps", type=int, default=32,
                    help="rollout: decision steps labelled per instance and round")
    ap.add_argument("--rollout-candidates", type=int, default=4,
                    help="rollout: ready ops tried per order decision")
    ap.add_argument("--rollout-rounds", type=int, default=2,
                    help="rollout: rounds of labelling with the current weights, then training")
    args = ap.parse_args(argv)
    if args.population < 2 or args.population % 2 or args.iterations < 1:
        ap.error("--population must be an even number ≥ 2 and --iterations ≥ 1")
    if min(args.epochs, args.workers, args.rollout_steps, args.rollout_candidates,
           args.rollout_rounds) < 1 or not args.expert_seconds > 0:
        ap.error("--epochs, --workers and the --rollout-* counts must be ≥ 1, --expert-seconds > 0")
    import torch

    torch.set_num_threads(1)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    train_cases = cases("train", args.platforms, args.max_ops)
    val_cases = cases("validation", args.platforms)
    print(f"{len(train_cases)} training instances ({sum(c.instance.n_ops for c in train_cases)} "
          f"ops), {len(val_cases)} validation instances", flush=True)
    net = build_network(args.rounds, args.seed)

    def log(s: str) -> None:
        print(s, flush=True)

    if args.method == "es":
        record = train(net, train_cases, val_cases, args.iterations, args.population, args.sigma,
                       args.lr, args.seed, args.eval_every, args.batch_instances,
                       not args.freeze_priority, args.optimizer, log=log)
        method = {"method": "OpenAI-ES (antithetic, centred ranks) on mean log (greedy makespan "
                            "/ HEFT makespan)", "iterations": args.iterations,
                  "population": args.population, "batch_instances": args.batch_instances,
                  "sigma": args.sigma, "optimizer": args.optimizer,
                  "best_iteration": record["best_iteration"]}
    else:
        record, method = _train_labelled(net, train_cases, val_cases, args, log)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(net, args.out)
    cpu_s = cpu_seconds() - cpu0
    card = {
        "name": "schedule_gnn", "kind": "scheduling list-scheduler policy",
        "features": list(FEATURES), "pe_features": list(PE_FEATURES),
        "network": {"rounds": args.rounds, "parameters": int(sum(p.numel() for p in net.parameters()))},
        "training": {**method, "lr": args.lr, "seeds": [args.seed], "curve": record["curve"],
                     "trained_heads": "PE choice" if args.freeze_priority else "priority + PE choice"},
        "split_version": workloads.SPLITS_VERSION, "splits_digest": workloads.splits_digest(),
        "platforms": list(args.platforms), "max_train_ops": args.max_ops,
        "train": _summary(train_cases, ratios(net, train_cases)),
        "validation": _summary(val_cases, record["val_ratios"]),
        "validation_untrained": _summary(val_cases, record["val_ratios_init"]),
        "cpu_hours": cpu_s / 3600.0, "wall_s": time.perf_counter() - t0,
        "onnx_sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
        **provenance(command="experiments/train_schedule_policy.py"),
    }
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    v = card["validation"]
    print(f"wrote {args.out} (+ .json): validation mean {v['mean_improvement_vs_heft_pct']:+.3f} % "
          f"vs HEFT, {card['cpu_hours']:.3f} CPU h", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
