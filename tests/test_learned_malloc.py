"""The learned mallocGame policy: its graph, the ONNX network, the agents and the policy card.

The hand instance is test_malloc's greedy trap on the unit machine (1 byte from slow memory
1 µs, from fast 0.25 µs): op0 reads a[64], b[100] and writes d[4]; op1 reads a, d and writes
c[100]; fast memory 104 bytes. The XLA-style greedy takes a (and d): 234 µs; the optimum
leaves a slow and places b, c, d: 180 µs.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from mlsysgym.agents import Budget, search
from mlsysgym.agents.base import AgentConfigError
from mlsysgym.agents.gnn import GnnError, OnnxGraphNet, build_graph_net, export_onnx
from mlsysgym.agents.learned_malloc import (
    EDGE_FEATURES,
    GREEDY,
    NODE_FEATURES,
    POLICY_PATH,
    PolicyCardError,
    PolicyTargetWarning,
    _alternatives,
    _Builder,
    _move_order,
    _range_max,
    _try_move,
    decode,
    instance_graph,
    lns_start,
    load_policy,
    move_gains,
    start_episode,
)
from mlsysgym.agents.malloc_baselines import xla_greedy
from mlsysgym.agents.malloc_lns import total_time
from mlsysgym.agents.problems import make_problem
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.ir.generators import random_layered_dag
from mlsysgym.ir.graph import Graph, Op, Role, Tensor
from mlsysgym.simulators.memory import MemorySystem, build_instance, validate, xla_order

UNIT_KW = {"compute_tflops": 1e-6, "fast_bandwidth_gbps": 4e-3, "slow_bandwidth_gbps": 1e-3}


def greedy_trap() -> Graph:
    sizes = {"a": 64, "b": 100, "d": 4, "c": 100}
    tensors = {t: Tensor(t, (n,), "float8", 1,
                         Role.OUTPUT if t == "c" else Role.ACTIVATION if t == "d" else Role.INPUT)
               for t, n in sizes.items()}
    ops = (Op("op0", "Custom", ("a", "b"), ("d",), {}, 0, 0, 0, 0),
           Op("op1", "Custom", ("a", "d"), ("c",), {}, 0, 0, 0, 0))
    return Graph("trap", ops, tensors, ("a", "b"), ("c",))


@pytest.fixture(scope="module")
def trap():
    return build_instance(greedy_trap(), capacity_bytes=104, system=MemorySystem(**UNIT_KW))


def test_range_max_matches_brute_force():
    rng = np.random.default_rng(0)
    v = rng.random(37)
    lo = rng.integers(0, 37, 200)
    hi = np.minimum(lo + rng.integers(0, 37, 200), 36)
    assert np.array_equal(_range_max(v, lo, hi), [v[a:b + 1].max() for a, b in zip(lo, hi)])


def test_instance_graph_by_hand(trap):
    x, ei, ea = instance_graph(trap)
    name = trap.buffer_names
    assert x.shape == (4, len(NODE_FEATURES)) and ea.shape == (ei.shape[1], len(EDGE_FEATURES))
    edges = {(name[s], name[d]): tuple(a) for s, d, a in zip(ei[0], ei[1], ea)}
    # live ranges a, d: ops 0-1; b: op 0; c: op 1 → every pair overlaps except b-c
    overlap = {("a", "b"), ("a", "d"), ("a", "c"), ("b", "d"), ("d", "c")}
    assert set(edges) == overlap | {(v, u) for u, v in overlap}
    # dataflow: op0 a, b → d; op1 a, d → c (both directions); a-b is rivalry only
    flow = {k for k, a in edges.items() if a[1] == 1.0}
    assert flow == {("a", "d"), ("d", "a"), ("b", "d"), ("d", "b"), ("a", "c"), ("c", "a"),
                    ("d", "c"), ("c", "d")}
    assert all(a[0] == 1.0 for a in edges.values())
    # b → a: they share op 0 of a's two ops; b is 100/104 of the capacity (÷ 4)
    assert edges[("b", "a")][2] == pytest.approx(0.5)
    assert edges[("b", "a")][3] == pytest.approx(100 / 104 / 4)
    f = {n: dict(zip(NODE_FEATURES, x[i])) for i, n in enumerate(name)}
    assert f["a"]["size_cap"] == pytest.approx(64 / 104 / 4)
    # the heuristic takes a and d; XLA order a, b, c, d; savings 96, 75, 75, 6 µs (÷ 96)
    assert [f[n]["heuristic_fast"] for n in "abcd"] == [1, 0, 0, 1]
    assert [f[n]["xla_rank"] for n in "abcd"] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert [f[n]["saving"] for n in "abcd"] == pytest.approx([1, 75 / 96, 75 / 96, 6 / 96])


def test_decode_follows_the_prior(trap):
    order = xla_order(trap)
    idx = {n: i for i, n in enumerate(trap.buffer_names)}
    everything = np.ones(4)
    acts, t = decode(trap, order, everything)
    assert acts == [1, 0, 0, 1] and t == pytest.approx(234.0)  # = the heuristic
    no_a = everything.copy()
    no_a[idx["a"]] = 0.1
    acts, t = decode(trap, order, no_a)
    assert acts == [0, 1, 1, 1] and t == pytest.approx(180.0)  # the optimum


def test_move_gains_by_hand(trap):
    # XLA order a, b, c, d; the heuristic's episode: a fast at 0, b and c slow, d fast (234 µs).
    # a → slow: the greedy completion places b at 0 (op0), c at 0 (op1) and d at 100 (ops 0-1,
    # the 4 bytes left): 180 µs, 54/234 saved (a at its 2nd offset, 40, changes nothing).
    # b or c → fast: 100 bytes do not fit beside a's 64 in 104 (nan). d → slow: op0 and op1
    # read its 4 bytes at 1 µs instead of 0.25 µs: 240 µs, -6/234; at its 2nd offset (100,
    # the high end of the gap [64, 104)) the time is unchanged: 0.
    g, fast = move_gains(trap, np.arange(4))
    assert g[0] == pytest.approx(54 / 234) and np.isnan(g[1]) and np.isnan(g[2])
    assert g[3] == 0.0 and list(fast) == [True, False, True, False]  # buffers a, b, d, c
    assert move_gains(trap, np.array([3]), n_offsets=1)[0][0] == pytest.approx(-6 / 234)
    # after one improvement (a → slow: b, c, d fast, 180 µs, the optimum) no move helps:
    # a → fast completes as the heuristic did (234 µs, -54/180); b, c or d → slow costs
    g, fast = move_gains(trap, np.arange(4), after=1)
    assert list(fast) == [False, True, True, True]  # a slow
    assert g[0] == pytest.approx(-54 / 180) and np.all(g[1:] < 0)


def test_move_order_follows_the_scores():
    rng = np.random.default_rng(0)
    assert list(_move_order(4, np.array([0.1, 3.0, -1.0, 2.0]), rng)) == [1, 3, 0, 2]
    tied = {tuple(_move_order(3, np.zeros(3), np.random.default_rng(s))) for s in range(20)}
    assert len(tied) > 1  # equal scores: a seeded random order
    xla = _move_order(100, None, rng)  # without scores: XLA order, neighbours shuffled a little
    assert abs(np.argsort(xla) - np.arange(100)).max() <= 20


def test_deferred_moves_come_last_in_the_ablation_order():
    """``learned`` (prune): the ablation's XLA order with the same seed, the moves the network
    defers moved behind all others, each group keeping its order."""
    xla = _move_order(200, None, np.random.default_rng(3))
    defer = np.zeros(200, bool)
    defer[[0, 5, 77, 150]] = True
    pruned = _move_order(200, None, np.random.default_rng(3), defer)
    assert list(pruned[-4:]) == [i for i in xla if defer[i]]
    assert list(pruned[:-4]) == [i for i in xla if not defer[i]]


def test_ceiling_orders_by_hand():
    """benchmarks/learned_malloc_ceiling.py: the oracle tries improving moves best first, then
    the unlabelled positions in XLA order, the non-improving ones last; ``fused`` takes the
    network's order and XLA order in turn, each buffer once."""
    from benchmark_scripts import load_script

    c = load_script("learned_malloc_ceiling.py")
    order = np.array([3, 0, 4, 1, 2])  # XLA positions 0..4 -> buffers
    sc = c.oracle_scores(5, order, [0, 1, 2], [0.01, None, 0.05])  # buffers 3, 0, 4 labelled
    tried = _move_order(5, sc[order], np.random.default_rng(0))  # positions, as the search
    assert [int(order[i]) for i in tried] == [4, 3, 1, 2, 0]
    net = np.array([0.1, 0.9, 0.5, 0.3, -1.0])  # network order: buffers 1, 2, 3, 0, 4
    fused = _move_order(5, c.fused_scores(net, order)[order], np.random.default_rng(0))
    assert [int(order[i]) for i in fused] == [1, 3, 2, 0, 4]


def test_headroom_by_hand():
    """benchmarks/learned_malloc_headroom.py on two instances (all-slow 1,000 µs each). a: the
    heuristic 900, learned 800 / 820, the ablation 820 / 820, CP-SAT 800: best 800, residuals
    (points) learned 0 / 2, ablation 2 / 2, heuristic 10; one tie. b: every run 500 (no gap):
    two ties. Means over instances: residual (2 + 0) / 2 = 1, median 1; share of a's gap
    closed 1 - 2/10 = 0.8; learned - ablation ((2 - 1) + 0) / 2 = 0.5."""
    from benchmark_scripts import load_script

    h = load_script("learned_malloc_headroom.py")

    def row(inst: str, agent: str, seed: int, t: float) -> dict:
        return {"instance": inst, "agent": agent, "seed": seed, "time_us": t,
                "all_slow_us": 1000.0}

    rows = [row("a", "xla_greedy", 0, 900), row("a", "cpsat", 0, 800),
            row("a", "learned", 0, 800), row("a", "learned", 1, 820),
            row("a", "learned_no_network", 0, 820), row("a", "learned_no_network", 1, 820)]
    rows += [row("b", a, s, 500) for a in ("learned", "learned_no_network") for s in (0, 1)]
    rows.append(row("b", "xla_greedy", 0, 500))
    s = h.summarize(h.headroom(rows))
    assert (s["instances"], s["runs"], s["ties"]) == (2, 4, 3)
    assert s["residual_mean"] == pytest.approx(1.0) and s["residual_median"] == pytest.approx(1.0)
    assert (s["residual_max"], s["residual_max_at"]) == (pytest.approx(2.0), "a")
    assert s["closed_mean"] == pytest.approx(0.8) and s["heuristic_mean"] == pytest.approx(5.0)
    assert s["learned_minus_ablation"] == pytest.approx(0.5)


def test_headroom_by_family_by_hand():
    """Per family, every set pooled: llama_l8 and tinyllama (family llama) learned 0.2 and 0.4
    points ahead of the ablation, swin_tiny 0.3 behind (all-slow 1,000 µs; best known = the
    CP-SAT row). llama: mean 0.3, its two workloads resampled: interval [0.2, 0.4]; swin: one
    workload, no interval; all: (0.2 + 0.4 - 0.3) / 3 = 0.1, 2 better, 1 worse. The ablation's
    residual: llama (0.2 + 0.4) / 2, swin 0."""
    from benchmark_scripts import load_script

    load_script("bench_learned_malloc.py")  # by_family imports its bootstrap
    h = load_script("learned_malloc_headroom.py")
    times = {"llama_l8_d1024_s256_b1:0.1": (700, 700, 702), "tinyllama_1b:0.1": (600, 600, 604),
             "swin_tiny:0.1": (500, 503, 500)}  # CP-SAT, learned, ablation
    rows = [{"instance": i, "agent": a, "seed": 0, "time_us": t, "all_slow_us": 1000.0}
            for i, ts in times.items()
            for a, t in zip(("cpsat", "learned", "learned_no_network", "xla_greedy"), (*ts, 900))]
    f = h.by_family({"one": h.headroom(rows[:8]), "two": h.headroom(rows[4:])})
    assert set(f) == {"llama", "swin", "all"}
    assert f["llama"]["mean"] == pytest.approx(0.3) and f["llama"]["workloads"] == 2
    assert f["llama"]["interval"] == pytest.approx([0.2, 0.4])
    assert f["llama"]["residual"] == pytest.approx(0.3) and f["swin"]["residual"] == 0.0
    assert f["swin"]["mean"] == pytest.approx(-0.3) and np.isnan(f["swin"]["interval"][0])
    assert (f["all"]["instances"], f["all"]["better"], f["all"]["worse"]) == (3, 2, 1)
    assert f["all"]["mean"] == pytest.approx(0.1)


def test_ranking_by_hand():
    """benchmarks/learned_malloc_ranking.py: scores 3, 2, 1, 0 on centres saving 0, 2 %, 0 and
    1 %. Of the 4 (improving, not) pairs the improving one scores higher in 1: AUC 1/4. The
    softmax draws centre k with weight e^(3-k); uniformly each saves 0.75 % on average."""
    from benchmark_scripts import load_script

    ranking = load_script("learned_malloc_ranking.py").ranking
    r = ranking(np.array([3.0, 2, 1, 0]), np.array([0.0, 0.02, 0.0, 0.01]))
    e = np.e
    assert r["auc"] == pytest.approx(0.25)
    assert r["softmax_gain"] == pytest.approx((0.02 * e**2 + 0.01) / (e**3 + e**2 + e + 1))
    assert (r["uniform_gain"], r["top_gain"], r["best_gain"], r["improving"]) == (
        pytest.approx(0.0075), 0.0, 0.02, 2)
    assert ranking(np.zeros(2), np.zeros(2))["auc"] is None  # no improving centre


def test_validation_bench_refuses_test_workloads_and_orders_instances_as_the_split():
    """bench_learned_malloc.py --validation --workloads must not run an agent on a test graph;
    its instances are those of ``malloc_instances`` (workload by workload)."""
    from benchmark_scripts import load_script
    from mlsysgym.ir import workloads

    bench = load_script("bench_learned_malloc.py")
    for w in ("swin_tiny", "gpt2+swin_tiny"):
        with pytest.raises(SystemExit, match="must be validation workloads"):
            bench.validate(bench._args(["--validation", "--workloads", w]))
    with pytest.raises(SystemExit, match="must be train workloads"):
        bench.validate(bench._args(["--validation", "--split", "train", "--workloads", "gpt2"]))
    with pytest.raises(SystemExit):  # argparse: test is not a choice
        bench._args(["--validation", "--split", "test"])
    with pytest.raises(SystemExit, match="no --workloads"):
        bench.validate(bench._args(["--validation", "--after", "fresh", "--workloads", "gpt2"]))
    caps = (0.1, 0.3)
    assert bench.instance_names(workloads.split("test"), caps) == [
        i.name for i in workloads.malloc_instances("test", caps)]


def test_validation_bench_runs_a_test_set_only_after_its_evaluation(tmp_path, monkeypatch):
    """bench_learned_malloc.py --validation --after NAME needs NAME's evaluation rows."""
    from benchmark_scripts import load_script

    bench = load_script("bench_learned_malloc.py")
    monkeypatch.setattr(bench, "RECORDED", tmp_path)
    with pytest.raises(SystemExit, match="its evaluation has not run"):
        bench.validate(bench._args(["--validation", "--after", "fresh12"]))
    (tmp_path / "learned_malloc_fresh12.jsonl").write_text("")  # not the large graphs' rows
    with pytest.raises(SystemExit, match="fresh12_large.jsonl missing"):
        bench.validate(bench._args(["--validation", "--after", "fresh12", "--large"]))
    with pytest.raises(SystemExit, match="--large needs --after"):
        bench.validate(bench._args(["--validation", "--large"]))


def test_claims_after_an_evaluation_by_hand():
    """bench_learned_malloc.claims_after: the new 5-s runs against the evaluation's heuristic
    and CP-SAT rows. a: learned 86 µs (mean of 85, 87), ablation 88, heuristic 100, CP-SAT 60 s
    95 unproved: both beat the heuristic and CP-SAT; the network saves 2/88 = 2.27 %. b: learned
    100 = the heuristic (no win), ablation 99 (-1/99 = -1.01 %), CP-SAT proved. The evaluation's
    own 10-s runs and an --off run are not counted."""
    from benchmark_scripts import load_script

    bench = load_script("bench_learned_malloc.py")

    def row(inst, agent, t, seconds=5.0, seed=0, status=None, **kw):
        return {"instance": inst, "buffers": 9, "agent": agent, "seconds": seconds, "seed": seed,
                "time_us": t, "wall_s": seconds, "moves": 1, "inference_s": None,
                "status": status, **kw}

    evaluated = [row("a", "xla_greedy", 100.0, 0.0), row("a", "cpsat", 90.0, 10.0, status="feasible"),
                 row("a", "cpsat", 95.0, 60.0, status="feasible"), row("a", "learned", 50.0, 10.0),
                 row("b", "xla_greedy", 100.0, 0.0), row("b", "cpsat", 80.0, 10.0, status="optimal"),
                 row("b", "cpsat", 80.0, 60.0, status="optimal")]
    rows = [row("a", "learned", 85.0), row("a", "learned", 87.0, seed=1),
            row("a", "learned_no_network", 88.0), row("a", "learned_no_network", 88.0, seed=1),
            row("a", "learned", 1.0, off="jumps"),
            row("b", "learned", 100.0), row("b", "learned_no_network", 99.0)]
    got = bench.claims_after(evaluated, rows, 5.0)
    assert (got["instances"], got["beats_xla"], got["beats_xla_runs"], got["runs"]) == (2, 1, 2, 3)
    assert (got["unproved_long"], got["beats_long"], got["ablation_beats_long"]) == (1, 1, 1)
    assert got["ablation_mean_pct"] == pytest.approx((200 / 88 - 100 / 99) / 2)
    assert (got["ablation_wins"], got["ablation_losses"]) == (1, 1)


def test_lns_start_is_the_ablation_s_placement_before_its_lns(trap):
    """On the trap the ablation's local search reaches the optimum (180 µs), and the class
    sweep keeps it."""
    problem = make_problem({"name": "malloc", "model": greedy_trap(), "capacity_bytes": 104,
                            **UNIT_KW})
    placed = lns_start(problem, 0, time_limit_s=2)
    validate(trap, placed)
    assert total_time(trap, placed.mode) == pytest.approx(180.0)


def test_bootstrap_by_workload_draws_whole_workloads():
    """bench_learned_malloc.bootstrap_mean, by hand. Workload a has four instances at +1, b one
    at -4. By workloads a resample is {a, a} (mean +1, p 1/4), {a, b} or {b, a} (0, p 1/2) or
    {b, b} (-4, p 1/4): interval [-4, +1]. By instances the mean is 1 - k for k ~ Bin(5, 0.2)
    draws of b: P(k >= 3) = 0.058 and P(k >= 4) = 0.007, so the 2.5th percentile is -2."""
    from benchmark_scripts import load_script

    bench = load_script("bench_learned_malloc.py")
    x = np.array([1.0, 1.0, 1.0, 1.0, -4.0])
    assert bench.bootstrap_mean(x, groups=["a", "a", "a", "a", "b"]) == (-4.0, 1.0)
    assert bench.bootstrap_mean(x) == pytest.approx((-2.0, 1.0))


def test_compare_runs_by_hand():
    """bench_learned_malloc.compare_runs: instance a saves 1 and 3 points more with seeds 0, 1,
    b 1 point less with both: runs 0.5 on average (2 wins, 2 losses); instances +2 and -1, so a
    resample of the two is {a, a} +2, {b, b} -1 (p 1/4 each) or mixed +0.5: [-1, +2]."""
    from benchmark_scripts import load_script

    bench = load_script("bench_learned_malloc.py")
    x = {("a", 0, "l"): 0.02, ("a", 1, "l"): 0.04, ("b", 0, "l"): 0.0, ("b", 1, "l"): 0.0,
         ("a", 0, "n"): 0.01, ("a", 1, "n"): 0.01, ("b", 0, "n"): 0.01, ("b", 1, "n"): 0.01}
    got = bench.compare_runs(x, x, "l", "n")
    assert got.pop("mean_points") == pytest.approx(0.5)
    assert got.pop("interval_points") == pytest.approx([-1.0, 2.0])
    assert got == {"wins": 2, "losses": 2, "runs": 4, "instances_better": 1,
                   "instances_worse": 1, "instances": 2}


def test_validation_by_family_by_hand():
    """bench_learned_malloc.by_family: gpt2 gains 2 points at 0.13 and 0 at 0.33 (mean +1),
    efficientnet loses 1; a mix of the two is a family of its own (+3)."""
    from benchmark_scripts import load_script

    bench = load_script("bench_learned_malloc.py")
    saved = {"gpt2:0.13": (0.12, 0.10), "gpt2:0.33": (0.2, 0.2), "efficientnet_b0:0.13": (0.1, 0.11),
             "gpt2+efficientnet_b0:0.13": (0.13, 0.1)}  # learned, ablation
    x = {(n, 0, a): v for n, pair in saved.items() for a, v in zip("ln", pair)}
    got = bench.by_family(x, "l", "n")
    assert {f: round(r["mean_points"], 9) for f, r in got.items()} == {
        "efficientnet": -1.0, "gpt": 1.0, "gpt+efficientnet": 3.0}
    assert (got["gpt"]["instances"], got["gpt"]["instances_better"]) == (2, 1)
    # the bar: instances -1, 0, +2, +3 (mean +1); 1/16 of the resamples draw only -1 and 0
    # (mean <= 0), more than 2.5 %, so the interval is not above zero; efficientnet is below
    out = {"learned-ablation": bench.compare_runs(x, x, "l", "n"), "learned-ablation by family": got}
    assert bench.validation_bar(out, "l") == {
        "interval_above_zero": False, "every_family_at_least_zero": False, "passed": False}
    out["learned-ablation by family"] = {k: v for k, v in got.items() if k != "efficientnet"}
    out["l: this - baseline"] = {"mean_points": 0.0}
    assert bench.validation_bar(out, "l") == {
        "interval_above_zero": False, "every_family_at_least_zero": True,
        "learned_not_worse_than_baseline": True, "passed": False}


def test_baseline_rows_of_a_redefined_instance_are_not_compared():
    """bench_learned_malloc.redefined: an instance whose all-slow time changed since the
    baseline's run (efficientnet_b0 after the pooling-cost fix: 1275.66 -> 1145.87 µs) is
    left out; equal ones, and instances the baseline lacks, are not."""
    from benchmark_scripts import load_script

    bench = load_script("bench_learned_malloc.py")
    rows = [{"instance": "efficientnet_b0:0.13", "all_slow_us": 1145.87},
            {"instance": "gpt2:0.13", "all_slow_us": 900.0}, {"instance": "gpt2:0.33", "all_slow_us": 900.0}]
    base = [{"instance": "efficientnet_b0:0.13", "all_slow_us": 1275.66},
            {"instance": "gpt2:0.13", "all_slow_us": 900.0}]
    assert bench.redefined(rows, base) == {"efficientnet_b0:0.13"}


def test_onnx_gives_the_torch_logits(trap, tmp_path):
    import torch

    net = build_graph_net(len(NODE_FEATURES), len(EDGE_FEATURES), hidden=16, rounds=2, seed=3)
    path = tmp_path / "g.onnx"
    export_onnx(net, path, len(NODE_FEATURES), len(EDGE_FEATURES))
    x, ei, ea = instance_graph(trap)
    logits, value = OnnxGraphNet(path)(x, ei, ea)
    with torch.no_grad():
        lt, vt = net(torch.from_numpy(x), torch.from_numpy(ei), torch.from_numpy(ea))
    assert logits.shape == (4, 1)
    np.testing.assert_allclose(logits, lt.numpy(), atol=1e-5)
    assert value == pytest.approx(float(vt), abs=1e-5)
    with pytest.raises(GnnError):
        OnnxGraphNet(path)(x[:, :3], ei, ea)


def test_no_network_search_finds_the_trap_optimum():
    problem = make_problem({"name": "malloc", "model": greedy_trap(), "capacity_bytes": 104,
                            **UNIT_KW})
    res = search("learned_no_network", problem, Budget(seconds=30), seed=0, time_limit_s=5)
    assert res.metrics[0]["time_us"] == pytest.approx(234.0)  # starts from the heuristic
    assert res.metrics[res.best_index]["time_us"] == pytest.approx(180.0)
    assert res.info["whole"] == "optimal"  # the LNS ran out of centres; CP-SAT proved it
    assert res.status == "optimal" and res.bound == pytest.approx(res.best_reward)
    with pytest.raises(AgentConfigError):
        search("learned_no_network", problem, 5, time_limit_s=0)
    with pytest.raises(AgentConfigError, match="lns_size must be an integer >= 0; got -1"):
        search("learned_no_network", problem, 5, time_limit_s=1, lns_size=-1)


@pytest.mark.parametrize(("lns_size", "drawn_size"), [(2, 2), (0, 40)])
def test_lns_size_reaches_the_neighbourhoods(monkeypatch, lns_size, drawn_size):
    """``lns_size`` is the size of every LNS neighbourhood the ablation draws; 0 is
    ``malloc_lns.auto_size``'s, 40 on the trap (104 of 168 peak bytes fast)."""
    from mlsysgym.agents import malloc_lns

    sizes, drawn = [], malloc_lns.neighbourhood
    monkeypatch.setattr(malloc_lns, "neighbourhood",
                        lambda p, c, size, *a: sizes.append(size) or drawn(p, c, size, *a))
    problem = make_problem({"name": "malloc", "model": greedy_trap(), "capacity_bytes": 104,
                            **UNIT_KW})
    res = search("learned_no_network", problem, Budget(seconds=30), seed=0, time_limit_s=5,
                 lns_size=lns_size, sweep_s=0)
    assert sizes and set(sizes) == {drawn_size}
    assert res.metrics[res.best_index]["time_us"] == pytest.approx(180.0)


def _same_state(x: dict, y: dict) -> bool:
    """Two builder snapshots hold the same state (the interval arrays up to their count)."""
    cut = {"_rs", "_re", "_lo", "_hi"}
    return x["k"] == y["k"] and all(
        np.array_equal(x[k][:x["k"]], y[k][:y["k"]]) if k in cut else np.array_equal(x[k], y[k])
        for k in x)


def test_adopted_snapshots_are_those_of_a_recorded_run():
    """After an accepted move the search takes the move's own snapshots instead of running
    the episode again: on a random 60-op DAG (84 buffers, a snapshot every 16) the scan in
    XLA order accepts 5 moves (436.99 → 428.74 µs) and after each the snapshots are those a
    fresh recording of the new episode makes, although the move changed some of them."""
    inst = build_instance(random_layered_dag(n_ops=60, seed=0), capacity_fraction=0.25)
    order = xla_order(inst)
    builder, best, best_t = start_episode(inst, order)
    builder.run(GREEDY, prefix=best, record=True)
    assert (inst.n_buffers, len(builder.snaps), best_t) == (84, 6, pytest.approx(436.9940, abs=1e-3))
    times = []
    for i in range(len(best)):
        for a in _alternatives(best[i], 4):
            cand, t = _try_move(builder, best, best_t, i, a, 2)
            if t < best_t - 1e-9:
                fresh = _Builder(inst, order, np.ones(inst.n_buffers))
                assert fresh.run(GREEDY, prefix=cand, record=True)[1] == t
                assert not all(map(_same_state, builder.snaps, fresh.snaps))  # before adopt
                builder.adopt()
                assert all(map(_same_state, builder.snaps, fresh.snaps))
                best, best_t = cand, t
                times.append(t)
                break
    assert times == pytest.approx([435.814, 434.635, 432.275, 429.916, 428.737], abs=1e-3)


def replay_checked(env: MallocGameEnv, actions: list[int]) -> float:
    """Replay ``actions`` with every one inside the env's mask; the simulator's final time."""
    env.reset()
    for a in actions:
        assert env.action_masks()[a]
        env.step(a)
    assert env.current_buffer is None
    return env.final_time_us()


@pytest.mark.skipif(not POLICY_PATH.is_file(), reason="no shipped malloc policy")
def test_learned_agent_returns_a_valid_placement():
    problem = make_problem({"name": "malloc", "model": "resnet18", "capacity": 0.1})
    res = search("learned", problem, Budget(seconds=60), seed=1, time_limit_s=2)
    env = MallocGameEnv(problem=problem.instance, n_offsets=problem.n_offsets,
                        invalid_action="raise")
    t = replay_checked(env, res.best_design["actions"])
    assert t == pytest.approx(res.metrics[res.best_index]["time_us"], rel=1e-9)
    assert t <= xla_greedy(problem.instance).time_us + 1e-6
    assert res.info["inference_s"] < 2


@pytest.mark.skipif(not POLICY_PATH.is_file(), reason="no shipped malloc policy")
@pytest.mark.parametrize("jump_network", [True, False])
def test_without_jump_network_the_jumps_are_drawn_uniformly(jump_network, monkeypatch):
    from mlsysgym.agents import learned_malloc

    seen, original = [], learned_malloc.lns_jumps

    def jumps(*args, score, **kwargs):
        seen.append(score)
        return original(*args, score=score, **kwargs)

    monkeypatch.setattr(learned_malloc, "lns_jumps", jumps)
    problem = make_problem({"name": "malloc", "model": "resnet18", "capacity": 0.1})
    search("learned", problem, Budget(seconds=60), seed=1, time_limit_s=2,
           jump_network=jump_network)
    assert len(seen) == 1 and (seen[0] is not None) == jump_network


@pytest.fixture
def policy_copy(tmp_path):
    if not POLICY_PATH.is_file():
        pytest.skip("no shipped malloc policy")
    onnx = tmp_path / "p.onnx"
    shutil.copy(POLICY_PATH, onnx)
    shutil.copy(POLICY_PATH.with_suffix(".json"), onnx.with_suffix(".json"))
    return onnx


def edit_card(onnx, **changes):
    card_path = onnx.with_suffix(".json")
    card = json.loads(card_path.read_text())
    for key, value in changes.items():
        if key == "target_id":
            card["fingerprint"]["target_id"] = value
        else:
            card[key] = value
    card_path.write_text(json.dumps(card))


def test_card_for_this_target_loads_silently(policy_copy, recwarn):
    from mlsysgym.core.target import target_id

    edit_card(policy_copy, target_id=target_id())
    net, card = load_policy(policy_copy)
    assert card["node_features"] == list(NODE_FEATURES)
    assert net.n_features == len(NODE_FEATURES)
    assert not [w for w in recwarn if issubclass(w.category, PolicyTargetWarning)]


def test_card_for_another_target_warns_or_raises(policy_copy):
    edit_card(policy_copy, target_id="0123456789ab")
    with pytest.warns(PolicyTargetWarning, match="0123456789ab"):
        load_policy(policy_copy)
    with pytest.raises(PolicyCardError, match="0123456789ab"):
        load_policy(policy_copy, strict=True)


@pytest.mark.parametrize("change", [{"onnx_sha256": "0" * 64}, {"node_features": ["size"]}])
def test_card_that_does_not_match_is_an_error(policy_copy, change):
    edit_card(policy_copy, **change)
    with pytest.raises(PolicyCardError):
        load_policy(policy_copy)


def test_missing_policy_is_an_error(tmp_path):
    with pytest.raises(PolicyCardError, match="no malloc policy"):
        load_policy(tmp_path / "none.onnx")


def test_rankers_by_hand():
    """benchmarks/learned_malloc_rankers.py on two one-instance families of two steps each.
    Instance a saves 0.01 at centre 0 of step 1 and 0.02 at centre 3 of step 2, nothing else;
    b the same halved. The rule's feature (slow_potential) is the saving itself, the network's
    logit its negative: the rule picks the best (a: (1 + 2) / 2 = 1.5 points per step), the
    logit a centre saving nothing (0), a uniform pick the mean of four (a: 0.375). Steps
    weigh equally: pooled over a and b, the rule (1.5 + 0.75) / 2 = 1.125, uniform
    (0.375 + 0.1875) / 2 = 0.28125."""
    from benchmark_scripts import load_script
    from mlsysgym.agents.malloc_lns import CENTRE_FEATURES

    r = load_script("learned_malloc_rankers.py")
    pot, logit = CENTRE_FEATURES.index("slow_potential"), len(CENTRE_FEATURES)

    def inst(name: str, family: str, scale: float) -> dict:
        saved = scale * np.array([[0.01, 0, 0, 0], [0, 0, 0, 0.02]])
        x = np.random.default_rng(0).random((2, 4, logit + 1)).astype(np.float32)
        x[..., pot], x[..., logit] = 100 * saved, -saved
        return {"name": name, "family": family, "x": x, "saved": saved}

    out = r.held_out([inst("a", "f1", 1.0), inst("b", "f2", 0.5)], epochs=5)
    arms = out["arms"]
    assert (out["steps"], out["steps with a saving"]) == (4, 4)
    assert arms["potential (rule)"]["by_family"] == pytest.approx({"f1": 1.5, "f2": 0.75})
    assert arms["potential (rule)"]["points_per_step"] == pytest.approx(1.125)
    assert arms["potential (rule)"]["minus_rule_interval"] == [0.0, 0.0]
    assert arms["uniform"]["points_per_step"] == pytest.approx(0.28125)
    assert arms["uniform"]["minus_rule"] == pytest.approx(0.28125 - 1.125)
    assert arms["network logit"]["points_per_step"] == 0.0
    assert arms["oracle (best of 4)"]["points_per_step"] == pytest.approx(1.125)
    for a in ("MLP, 11 features", "MLP, 11 features + logit"):
        assert 0.0 <= arms[a]["points_per_step"] <= 1.125 + 1e-9
    md = r.render({"command": "c", "instances": 2, "capacities": [0.1], "seconds": 1.0,
                   "result": out})
    assert "| potential (rule) | 1.1250 | +0.0000 [+0.0000, +0.0000] | 1.5000 | 0.7500 |" in md


def test_sizes_by_hand():
    """benchmarks/learned_malloc_sizes.py's rates at sizes 20 and 40. Instance a: step 1 saves
    0.01 at size 20 only, step 2 0.02 at size 40 only; the repairs take 0.1 / 0.2 s and
    0.1 / 0.3 s. Size 20: 1 point in 0.2 s = 5 per s; size 40: 2 in 0.5 = 4; per step the
    best: 3 points in 0.1 + 0.3 s = 7.5. Instance b saves nothing (0 everywhere). Means over
    the two: 2.5, 2, best fixed 2.5, per step 3.75."""
    from benchmark_scripts import load_script

    m = load_script("learned_malloc_sizes.py")
    a = {"name": "a", "family": "f1", "saved": np.array([[0.01, 0.0], [0.0, 0.02]]),
         "secs": np.array([[0.1, 0.2], [0.1, 0.3]])}
    b = {"name": "b", "family": "f2", "saved": np.zeros((1, 2)), "secs": np.array([[0.1, 0.2]])}
    out = m.rates([a, b], [20, 40])
    arms = out["arms"]
    assert (out["instances"], out["steps"]) == (2, 3)
    assert out["best fixed size counts"] == {"size 20": 1, "size 40": 0}
    assert arms["size 20"]["per_instance"] == pytest.approx([5.0, 0.0])
    assert arms["size 40"]["points_per_s"] == pytest.approx(2.0)
    assert arms["size 20"]["minus_shipped"] == pytest.approx(0.5)
    assert arms["size 20"]["minus_shipped_interval"] == pytest.approx([0.0, 1.0])
    assert arms["best fixed size per instance"]["points_per_s"] == pytest.approx(2.5)
    assert arms["best size per step"]["by_family"] == pytest.approx({"f1": 7.5, "f2": 0.0})
    md = m.render({"command": "c", "capacities": [0.1], "seconds": 1.0, "sizes": [20, 40],
                   "result": out})
    assert "| best size per step | 3.7500 | +1.7500 [+0.0000, +3.5000] | 7.5000 | 0.0000 |" in md


def test_size_features_read_the_ablation_rows_by_hand():
    """benchmarks/learned_malloc_size_features.py: the ablation's % saved, mean over seeds, of
    the run's own rows (an ``--off`` arm's and learned's left out): (1000 − 900) / 1000 and
    (1000 − 800) / 1000 → 15 %."""
    from benchmark_scripts import load_script

    m = load_script("learned_malloc_size_features.py")
    row = {"instance": "i", "agent": "learned_no_network", "all_slow_us": 1000.0, "off": None}
    rows = [{**row, "time_us": 900.0}, {**row, "time_us": 800.0},
            {**row, "time_us": 100.0, "off": "rank_potential"},
            {**row, "time_us": 100.0, "agent": "learned"}]
    assert m.ablation_points(rows) == {"i": pytest.approx(15.0)}
    assert m.spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 0.0])) == pytest.approx(-1.0)


def test_size_threshold_rule_by_hand():
    """learned_malloc_size_features.threshold_rule on x = 1, 2, 3 with gains +1, −1, +0.5:
    "20 where x ≤ 1" gains 1 / 3, more than any other threshold or direction (x ≤ 3: 0.5 / 3;
    x ≥ 1: 0.5 / 3); with no gain anywhere the rule never picks 20."""
    from benchmark_scripts import load_script

    m = load_script("learned_malloc_size_features.py")
    assert m.threshold_rule(np.array([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 0.5])) == (1.0, 1)
    assert m.threshold_rule(np.array([1.0, 2.0]), np.array([-1.0, 0.0])) == (-np.inf, 1)
