"""Large-neighbourhood search for mallocGame (agents/malloc_lns.py), checked by hand on the
greedy trap of test_learned_malloc: buffers a (64 B), b (100 B), d (4 B), c (100 B) in a
104-B fast memory; the XLA-style heuristic keeps a and d fast (234 µs), the optimum keeps
b, c and d fast (180 µs)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mlsysgym.agents import Budget, search
from mlsysgym.agents.base import AgentConfigError
from mlsysgym.agents.malloc_baselines import actions_for, xla_greedy
from mlsysgym.agents.malloc_lns import (
    CENTRE_FEATURES,
    Replay,
    auto_size,
    candidates,
    centre_features,
    centre_state,
    class_sweep,
    jumps,
    lns,
    neighbourhood,
    next_source,
    potential_rank,
    repair,
    repair_gain,
    size_classes,
    total_time,
    uniform_share,
    whole,
)
from mlsysgym.agents.problems import make_problem
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.ir.graph import Graph, Op, Role, Tensor
from mlsysgym.simulators.memory import (
    FAST,
    PREFETCH,
    SLOW,
    MemoryInstance,
    MemorySystem,
    Placement,
    build_instance,
    demote_for_replay,
    repack_for_replay,
    validate,
    xla_order,
)

from tests.test_learned_malloc import UNIT_KW, greedy_trap, replay_checked


@pytest.fixture(scope="module")
def trap():
    return build_instance(greedy_trap(), capacity_bytes=104, system=MemorySystem(**UNIT_KW))


def test_repair_reaches_the_optimum_only_with_every_blocker_free(trap):
    start = xla_greedy(trap).placement
    assert total_time(trap, start.mode) == pytest.approx(234.0)
    a, b, d, c = (trap.index(n) for n in "abdc")
    everything = repair(trap, start, np.array([a, b, c, d]), seconds=5)
    validate(trap, everything)
    assert total_time(trap, everything.mode) == pytest.approx(180.0)
    assert list(everything.mode[[a, b, c, d]]) == [SLOW, FAST, FAST, FAST]
    # d stays fixed at its offset (64): b's 100 bytes then find no gap of 100 beside it
    blocked = repair(trap, start, np.array([a, b, c]), seconds=5)
    validate(trap, blocked)
    assert total_time(trap, blocked.mode) == pytest.approx(234.0)
    assert blocked.offset[d] == start.offset[d] == 64


def test_neighbourhood_is_the_centre_and_its_nearest_overlapping_candidates(trap):
    rng = np.random.default_rng(0)
    a, b, d, c = (trap.index(n) for n in "abdc")
    everyone = np.ones(trap.n_buffers, bool)
    # b lives at op 0 (with a and d), c at op 1 (with a and d): they never overlap
    assert set(neighbourhood(trap, b, 10, everyone, rng)) == {a, b, d}
    assert neighbourhood(trap, c, 10, everyone, rng)[0] == c
    assert len(neighbourhood(trap, a, 2, everyone, rng)) == 2
    only_a = np.zeros(trap.n_buffers, bool)
    only_a[a] = True
    assert list(neighbourhood(trap, c, 10, only_a, rng)) == [c, a]


def test_repair_gain_is_the_fraction_saved(trap):
    # d (ops 0-1) overlaps every buffer: its neighbourhood frees all four, 234 -> 180 µs
    start = xla_greedy(trap).placement
    rng = np.random.default_rng(0)
    assert repair_gain(trap, start, trap.index("d"), rng, repair_s=5) == pytest.approx(54 / 234)
    best = repair(trap, start, np.arange(trap.n_buffers), seconds=5)
    assert repair_gain(trap, best, trap.index("d"), rng, repair_s=5) == 0.0


def test_lns_never_loses_time_and_stops_at_its_deadline(trap):
    start = xla_greedy(trap).placement
    t0 = time.perf_counter()
    best, info = lns(trap, start, np.random.default_rng(0), deadline=t0 + 1.0, size=4)
    assert time.perf_counter() - t0 < 1.5
    validate(trap, best)
    assert total_time(trap, best.mode) == pytest.approx(180.0)
    assert info["improvements"] >= 1 and info["repairs"] >= info["improvements"]


@pytest.mark.parametrize("scores", [None, "one"])
def test_lns_sets_a_failed_centre_aside_and_stops_when_none_is_left(trap, scores):
    # from the optimum no repair finds anything: each candidate is drawn once, even when the
    # network's softmax puts (almost) all its weight on one centre, then the search ends early
    best = repair(trap, xla_greedy(trap).placement, np.arange(trap.n_buffers), seconds=5)
    z = None
    if scores == "one":
        z = np.zeros(trap.n_buffers)
        z[trap.index("d")] = 50.0
    t0 = time.perf_counter()
    out, info = lns(trap, best, np.random.default_rng(0), deadline=t0 + 30.0, scores=z, mix=0.0,
                    adapt=False)
    assert time.perf_counter() - t0 < 5.0
    n = int(candidates(trap, best).sum())
    assert info == {"repairs": n, "improvements": 0, "network_repairs": 0 if z is None else n,
                    "oracle_s": 0.0}
    assert total_time(trap, out.mode) == pytest.approx(180.0)


def test_auto_size_is_small_where_the_fast_memory_is_a_sliver_of_the_peak(trap):
    # the trap's peak live bytes: a, b and d at op 0, 64 + 100 + 4 = 168; 104 fast bytes are
    # 62 % of it (the default 40), 3 are 1.8 % (<= 2.0423 %: 20)
    assert trap.peak_live_bytes == 168
    assert auto_size(trap) == 40
    tiny = build_instance(greedy_trap(), capacity_bytes=3, system=MemorySystem(**UNIT_KW))
    assert auto_size(tiny) == 20


def test_lns_oracle_keeps_the_best_of_k_and_is_charged_one_repair(trap):
    # from the optimum no repair finds anything: each step of the oracle with k = 3 tries 3
    # distinct centres and sets them all aside, so n candidates take ceil(n / 3) steps, and
    # the deadline moves by the time of the two repairs per step not kept
    best = repair(trap, xla_greedy(trap).placement, np.arange(trap.n_buffers), seconds=5)
    n = int(candidates(trap, best).sum())
    out, info = lns(trap, best, np.random.default_rng(0), deadline=time.perf_counter() + 30.0,
                    oracle=3)
    assert info["repairs"] == -(-n // 3) and info["improvements"] == 0
    assert info["oracle_s"] > 0.0
    # from the heuristic's placement the oracle reaches the optimum (180) as the plain LNS does
    out, info = lns(trap, xla_greedy(trap).placement, np.random.default_rng(0),
                    deadline=time.perf_counter() + 1.0, size=4, oracle=3)
    validate(trap, out)
    assert total_time(trap, out.mode) == pytest.approx(180.0) and info["improvements"] >= 1


def test_the_source_whose_repairs_save_more_per_second_is_drawn_more():
    # priors 1 s each and 0.0005 saved each (mix 0.5): an even split
    assert uniform_share([5e-4, 5e-4], [1.0, 1.0]) == pytest.approx(0.5)
    # the network's repairs saved 1 % in 2 s, the uniform ones nothing in 1 s:
    # rates 0.0005 / 2 = 0.00025 vs 0.0105 / 3 = 0.0035 -> 0.00025 / 0.00375 = 1/15
    assert uniform_share([5e-4, 5e-4 + 0.01], [2.0, 3.0]) == 0.1  # kept at the floor
    assert uniform_share([5e-4 + 0.002, 5e-4], [2.0, 1.0]) == pytest.approx(
        (0.0025 / 2) / (0.0025 / 2 + 0.0005))


@pytest.mark.parametrize("time_share, network_share", [(False, 10**0.5 / (1 + 10**0.5)),
                                                       (True, 0.5)])
def test_with_time_share_a_slow_fruitless_source_gets_no_more_time(time_share, network_share):
    # neither source saves anything (priors 0.0005 each, 1 s each); the network's repairs take
    # 0.1 s, the uniform ones 0.01 s. Drawn by count (p = uniform's share = s1 / (s0 + s1)),
    # spent times settle where s0 / s1 = 0.01 p / (0.1 (1 - p)) and p / (1 - p) = s1 / s0,
    # so (s1 / s0)^2 = 10: the network takes sqrt(10) / (1 + sqrt(10)) = 76 % of the time.
    # With time_share the uniform source goes next while s0 < s1: half the time each.
    saved, spent = np.full(2, 5e-4), np.ones(2)
    rng = np.random.default_rng(0)
    for _ in range(20_000):
        k = next_source(saved, spent, rng, time_share=time_share)
        spent[k] += (0.01, 0.1)[k]
    assert (spent[1] - 1) / (spent.sum() - 2) == pytest.approx(network_share, abs=0.02)
    # without adapt: mix alone, drawn (time_share needs adapt)
    draws = [next_source(saved, spent, rng, mix=0.9, adapt=False, time_share=True)
             for _ in range(2000)]
    assert np.mean(draws) == pytest.approx(0.1, abs=0.03)


def test_agents_with_lns_find_the_optimum_and_check_the_share():
    problem = make_problem({"name": "malloc", "model": greedy_trap(), "capacity_bytes": 104,
                            **UNIT_KW})
    res = search("learned_no_network", problem, Budget(seconds=30), seed=0, time_limit_s=2,
                 lns_share=0.9)
    assert res.metrics[res.best_index]["time_us"] == pytest.approx(180.0)
    assert res.info["repairs"] >= 1
    with pytest.raises(AgentConfigError, match="lns_share"):
        search("learned_no_network", problem, 5, lns_share=1.5)
    with pytest.raises(AgentConfigError, match="sweep_s"):
        search("learned_no_network", problem, 5, sweep_s=-1)
    for agent, bad in (("learned_no_network", -1), ("learned", 1.5), ("learned", True)):
        with pytest.raises(AgentConfigError, match="jumps"):
            search(agent, problem, 5, jumps=bad)


def twins() -> Graph:
    """p and q (100 B each) live together at op0; p is read again at op1. s (4 B) and o (8 B)
    are the ops' outputs."""
    sizes = {"p": 100, "q": 100, "s": 4, "o": 8}
    roles = {"p": Role.INPUT, "q": Role.INPUT, "s": Role.ACTIVATION, "o": Role.OUTPUT}
    tensors = {t: Tensor(t, (n,), "float8", 1, roles[t]) for t, n in sizes.items()}
    ops = (Op("op0", "Custom", ("p", "q"), ("s",), {}, 0, 0, 0, 0),
           Op("op1", "Custom", ("p", "s"), ("o",), {}, 0, 0, 0, 0))
    return Graph("twins", ops, tensors, ("p", "q"), ("o",))


def twins_q_fast() -> tuple[MemoryInstance, Placement]:
    """:func:`twins` in a 100-B fast memory (1 B/µs slow, 4 B/µs fast), q fast at offset 0."""
    inst = build_instance(twins(), capacity_bytes=100, system=MemorySystem(**UNIT_KW))
    mode = np.full(inst.n_buffers, SLOW)
    mode[inst.index("q")] = FAST
    offset = np.full(inst.n_buffers, -1)
    offset[inst.index("q")] = 0
    return inst, Placement(mode, offset)


def test_class_sweep_trades_buffers_of_one_size():
    # 1 B/µs slow, 4 B/µs fast, no compute. All slow: op0 100 + 100 + 4, op1 100 + 4 + 8 = 316.
    # q fast (a 100-B memory holds one of the twins): op0 100 + 25 + 4 = 129, op1 112 -> 241;
    # p fast instead: op0 25 + 100 + 4 = 129, op1 25 + 4 + 8 = 37 -> 166, and nothing else fits
    inst, start = twins_q_fast()
    p, q = inst.index("p"), inst.index("q")
    validate(inst, start)
    assert total_time(inst, start.mode) == pytest.approx(241.0)
    assert [list(c) for c in size_classes(inst, start)] == [sorted([p, q])]  # s, o: one each
    best, found = class_sweep(inst, start, deadline=time.perf_counter() + 10)
    validate(inst, best)
    assert found == 1 and total_time(inst, best.mode) == pytest.approx(166.0)
    assert best.mode[p] == FAST and best.mode[q] == SLOW
    late, none = class_sweep(inst, start, deadline=time.perf_counter() - 1)
    assert none == 0 and late is start


def test_jumps_redecide_the_buffers_the_score_picks():
    # twins as above: q fast 241; the jump that frees p and q finds p fast instead, 166. Freeing
    # s and o (2 of the 4 candidates) finds only o fast (op1, where q is dead): 8 -> 2, 235.
    inst, start = twins_q_fast()
    p, q, s_, o = (inst.index(t) for t in "pqso")
    assert candidates(inst, start)[[p, q, s_, o]].all()

    def favour(*picked: int):
        z = np.zeros(inst.n_buffers)
        z[list(picked)] = 50.0  # the Gumbel noise cannot outweigh it
        return lambda placement: z

    rng = np.random.default_rng(0)
    far = time.perf_counter() + 10
    best, found = jumps(inst, start, rng, deadline=far, tries=1, size=2, score=favour(p, q))
    validate(inst, best)
    assert found == 1 and total_time(inst, best.mode) == pytest.approx(166.0)
    other, found = jumps(inst, start, rng, deadline=far, tries=3, size=2, score=favour(s_, o))
    assert found == 1 and total_time(inst, other.mode) == pytest.approx(235.0)
    whole, found = jumps(inst, start, rng, deadline=far, tries=1)  # 100 >= all 4: uniform
    assert found == 1 and total_time(inst, whole.mode) == pytest.approx(166.0)
    late, none = jumps(inst, start, rng, deadline=time.perf_counter() - 1, tries=3)
    assert none == 0 and late is start


def test_a_stuck_jump_is_the_last_with_stop_stuck(monkeypatch):
    # repairs that find nothing: one that takes all its time ends the jumps with stop_stuck
    # (1 of 3 tries); one that gives up at once does not (3 of 3), nor any without it
    import mlsysgym.agents.malloc_lns as ml

    inst, start = twins_q_fast()
    calls = []
    for slow, stop, expected in ((True, True, 1), (True, False, 3), (False, True, 3)):
        def fruitless(*args, seconds: float, slow: bool = slow, **kw):
            calls.append(1)
            time.sleep(seconds if slow else 0.0)  # and finds nothing (None)

        monkeypatch.setattr(ml, "repair", fruitless)
        calls.clear()
        best, found = jumps(inst, start, np.random.default_rng(0), deadline=time.perf_counter() + 10,
                            tries=3, repair_s=0.05, stop_stuck=stop)
        assert (len(calls), found) == (expected, 0) and best is start


def test_whole_solves_every_buffer_at_once():
    # twins, q fast (241): CP-SAT on all four buffers finds p fast instead (166) and proves it
    # optimal (beside p nothing fits); from there it finds nothing faster and keeps the input
    inst, start = twins_q_fast()
    best, proved = whole(inst, start, seconds=5)
    validate(inst, best)
    assert proved and total_time(inst, best.mode) == pytest.approx(166.0)
    assert best.mode[inst.index("p")] == FAST
    again, proved = whole(inst, best, seconds=5)
    assert proved and again is best


def test_a_jump_frees_what_stuck_neighbourhoods_cannot():
    # twins, q fast (241). Neighbourhoods of one buffer reach only o fast (235) and then have
    # no centre left; a jump from there frees all four (100 >= 4) and finds p fast (166)
    inst, start = twins_q_fast()
    stuck, info = lns(inst, start, np.random.default_rng(0), deadline=time.perf_counter() + 5,
                      size=1)
    assert total_time(inst, stuck.mode) == pytest.approx(235.0)
    assert info["improvements"] == 1
    out, found = jumps(inst, stuck, np.random.default_rng(0), deadline=time.perf_counter() + 5,
                       tries=1)
    validate(inst, out)
    assert total_time(inst, out.mode) == pytest.approx(166.0) and found == 1


@pytest.mark.slow
def test_late_repair_labels_start_where_the_ablation_s_lns_starts(monkeypatch):
    # train_malloc_policy --moves repair_late: the labelled placement is the one lns_start
    # returned on this small training DAG (recorded, not recomputed: lns_start's search is
    # timed, so a second call on a slower CPU may end elsewhere), not the heuristic's; each
    # label a saving >= 0
    from mlsysgym.agents import learned_malloc
    from mlsysgym.experiments.train_malloc_policy import label_repairs

    starts, lns_start = [], learned_malloc.lns_start
    monkeypatch.setattr(learned_malloc, "lns_start",
                        lambda *a, **k: starts.append(lns_start(*a, **k)) or starts[-1])
    name = "random_dag_n60_s0:0.25"
    late, early = (label_repairs(name, 4, 0, late=flag) for flag in (True, False))
    assert len(starts) == 1
    assert late["fast"] == (starts[0].mode != SLOW).astype(np.int8).tolist()
    assert late["fast"] != early["fast"]
    assert len(late["gains"]) == 4 and min(late["gains"]) >= 0.0


def test_centre_features_by_hand(trap):
    # the heuristic's placement (a, d fast; 234 µs): each op's memory time 168 - 48 - 3 = 117
    # µs above compute (0); 68 B resident at both ops; b would save 75 µs at op 0 (25 µs at 4x
    # the bandwidth instead of 100), c 75 at op 1; a saves 96 and d 6 being fast
    start = xla_greedy(trap).placement
    a, b, d = (trap.index(n) for n in "abd")
    state = centre_state(trap, start)
    assert state["total"] == pytest.approx(234.0)
    np.testing.assert_allclose(state["potential"], [0, 75, 0, 75])
    f = centre_features(trap, start, np.array([b, d]), [np.array([b, a, d]), np.arange(4)],
                        state, recent=(1, 1))
    row = dict(zip(CENTRE_FEATURES, f[0]))
    assert row["excess"] == pytest.approx(100.0)  # the span, ops 0-1, holds all the excess
    assert row["slow_potential"] == pytest.approx(100 * 75 / 234, rel=1e-6)
    assert row["fast_saving"] == pytest.approx(100 * 102 / 234, rel=1e-6)
    assert row["fast_bytes"] == pytest.approx(68 / 168, rel=1e-6)
    assert row["headroom"] == pytest.approx(1 - 68 / 104, rel=1e-6)
    assert (row["centre_fast"], row["span"], row["freed"], row["recent"]) == (0, 1, 0.75, 1)
    assert row["capacity_peak"] == pytest.approx(104 / 168, rel=1e-6)
    assert f[1][CENTRE_FEATURES.index("slow_potential")] == pytest.approx(100 * 150 / 234,
                                                                          rel=1e-6)
    assert f[1][CENTRE_FEATURES.index("centre_fast")] == 1.0
    np.testing.assert_array_equal(potential_rank(f), f[:, 1])


@pytest.mark.parametrize("seed", range(3))
def test_lns_repairs_the_centre_its_ranker_scores_best(trap, seed):
    # only the neighbourhoods of a and d (all four buffers) reach the optimum; b's and c's
    # (three) find nothing. Ranked by the share of buffers freed, the first repair is a's or
    # d's: one repair, then each of the four centres once more, set aside: 5 repairs. Ranked
    # the other way, b and c fail first: 7. Every draw is of the four candidates
    start = xla_greedy(trap).placement
    seen = []

    def spy(sign):
        def rank(f):
            seen.append(len(f))
            return sign * f[:, CENTRE_FEATURES.index("freed")]
        return rank

    for sign, repairs in ((1, 5), (-1, 7)):
        out, info = lns(trap, start, np.random.default_rng(seed),
                        deadline=time.perf_counter() + 30.0, ranker=spy(sign))
        assert total_time(trap, out.mode) == pytest.approx(180.0)
        assert (info["repairs"], info["improvements"]) == (repairs, 1)
    assert seen[0] == 4


def replay_trap() -> tuple[MemoryInstance, Placement]:
    """Ops A (t0, t1 → t2), B (t2, t1 → t3), C (t3, t0 → t4) in a 100-B fast memory, 1 B/µs
    slow, 4 B/µs fast, no compute; t0 20 B (live A–C), t1 40 B (A–B), t2 10 B (A–B), t3 30 B
    (B–C), t4 50 B (C). A placement the env cannot replay with one candidate offset (best
    fit's low end) per buffer: t1 at 21, t0 at 76, t2 at 10, t4 at 19, t3 slow."""
    sizes = {"t0": 20, "t1": 40, "t2": 10, "t3": 30, "t4": 50}
    roles = {"t0": Role.INPUT, "t1": Role.INPUT, "t2": Role.ACTIVATION, "t3": Role.ACTIVATION,
             "t4": Role.OUTPUT}
    tensors = {t: Tensor(t, (n,), "float8", 1, roles[t]) for t, n in sizes.items()}
    ops = (Op("A", "Custom", ("t0", "t1"), ("t2",), {}, 0, 0, 0, 0),
           Op("B", "Custom", ("t2", "t1"), ("t3",), {}, 0, 0, 0, 0),
           Op("C", "Custom", ("t3", "t0"), ("t4",), {}, 0, 0, 0, 0))
    inst = build_instance(Graph("replay_trap", ops, tensors, ("t0", "t1"), ("t4",)),
                          capacity_bytes=100, system=MemorySystem(**UNIT_KW))
    return inst, placed(inst, {"t1": 21, "t0": 76, "t2": 10, "t4": 19})


def placed(inst: MemoryInstance, offsets: dict[str, int]) -> Placement:
    """The buffers named in ``offsets`` fast at those offsets, the others slow."""
    mode, offset = np.full(inst.n_buffers, SLOW, np.int8), np.full(inst.n_buffers, -1, np.int64)
    for name, at in offsets.items():
        mode[inst.index(name)], offset[inst.index(name)] = FAST, at
    return Placement(mode, offset)


def fast_at(inst: MemoryInstance, placement: Placement) -> dict[str, int]:
    """The fast buffers' offsets by name (``placed``'s inverse)."""
    return {inst.buffer_names[b]: int(placement.offset[b])
            for b in np.flatnonzero(placement.mode != SLOW)}


def test_demoted_replay_and_the_fastest_replayable_placement_by_hand():
    # all slow: A 20 + 40 + 10, B 10 + 40 + 30, C 30 + 20 + 50 = 250 µs. The placement: A 5 + 10
    # + 2.5, B 2.5 + 10 + 30, C 30 + 5 + 12.5 = 107.5. Replayed in XLA order (t1, t3, t0, t4,
    # t2) at best fit's low end: t1 at 0, t0 at 40 (its live range's gap is [40, 100)), then
    # t4 at C finds [0, 40) and [60, 100), 40 B each: it stays slow (C 30 + 5 + 50: 145 µs);
    # t2 at 60. An earlier placement, t1 at 0, t2 at 40, t4 at 0 (t0 slow): A 20 + 10 + 2.5, B
    # 42.5, C 30 + 20 + 12.5 = 137.5 µs, and the env replays it as it is.
    inst, fast = replay_trap()
    order = xla_order(inst)
    assert [inst.buffer_names[b] for b in order] == ["t1", "t3", "t0", "t4", "t2"]
    validate(inst, fast)
    assert total_time(inst, fast.mode) == pytest.approx(107.5)
    assert repack_for_replay(inst, fast, order, 1) is None
    demoted = demote_for_replay(inst, fast, order, 1)
    assert fast_at(inst, demoted) == {"t0": 40, "t1": 0, "t2": 60}
    assert total_time(inst, demoted.mode) == pytest.approx(145.0)
    env = MallocGameEnv(problem=inst, n_offsets=1)
    assert replay_checked(env, actions_for(env, demoted)) == pytest.approx(145.0)
    earlier = placed(inst, {"t1": 0, "t2": 40, "t4": 0})
    assert total_time(inst, earlier.mode) == pytest.approx(137.5)
    soon = time.perf_counter() + 10

    def best(kept: list[Placement], start_t: float, n_offsets: int = 1,
             deadline: float = soon) -> dict[str, int] | None:
        out = Replay(order, n_offsets, kept=kept).best(inst, start_t, deadline=deadline)
        return None if out is None else fast_at(inst, out)

    assert best([earlier, fast], 250.0) == {"t1": 0, "t2": 40, "t4": 0}
    assert best([fast], 250.0) == fast_at(inst, demoted)
    assert best([earlier, fast], 130.0) is None  # neither beats the start
    # past the deadline only the last (fastest) placement is tried
    assert best([earlier, fast], 250.0, deadline=0.0) == fast_at(inst, demoted)
    # with both ends of each gap offered: t1 0 (of 0, 60), t0 80 (of 40, 80), t4 in [0, 80) at
    # 30 (of 0, 30; nearest its 19), t2 40 (of 40, 70): every buffer keeps its mode
    assert best([fast], 250.0, n_offsets=2) == {"t0": 80, "t1": 0, "t2": 40, "t4": 30}
    # replayed as the env can: the demoted placement with one offset, repacked with two
    assert fast_at(inst, Replay(order, 1).replayed(inst, fast)) == fast_at(inst, demoted)
    assert fast_at(inst, Replay(order, 2).replayed(inst, fast)) == best([fast], 250.0, 2)


def test_a_replay_from_a_base_is_the_full_replay():
    # demote_for_replay from a base the env replays places again only the buffers whose
    # candidates can differ; it must give the full pass's placement. By hand on the replay trap
    # (the demoted placement of the test above: t1 0, t0 40, t2 60), from three bases; then on
    # resnet18 with prefetch for random changes of a replayed placement, each result the next base
    inst, fast = replay_trap()
    order = xla_order(inst)
    demoted = demote_for_replay(inst, fast, order, 1)
    for base in (demoted, placed(inst, {"t1": 0, "t2": 40, "t4": 0}), Placement.all_slow(inst)):
        assert fast_at(inst, demote_for_replay(inst, fast, order, 1, base)) == {"t0": 40, "t1": 0,
                                                                               "t2": 60}
    problem = make_problem({"name": "malloc", "model": "resnet18", "capacity": 0.15,
                            "n_offsets": 4, "prefetch": 2})
    p, order, rng = problem.instance, problem.env.order, np.random.default_rng(0)
    base = demote_for_replay(p, xla_greedy(p, order).placement, order, 4)
    demoted_modes = moved_others = 0
    for _ in range(60):
        mode, offset = base.mode.copy(), base.offset.copy()
        for b in rng.choice(p.n_buffers, int(rng.integers(1, 8)), replace=False):
            mode[b] = rng.choice([SLOW, FAST, PREFETCH] if p.prefetchable[b] else [SLOW, FAST])
            offset[b] = rng.integers(0, max(p.capacity_bytes - p.size[b], 0) + 1)
        new = Placement(mode, np.where(mode == SLOW, -1, offset))
        full = demote_for_replay(p, new, order, 4)
        got = demote_for_replay(p, new, order, 4, base)
        assert np.array_equal(got.mode, full.mode) and fast_at(p, got) == fast_at(p, full)
        demoted_modes += not np.array_equal(got.mode, new.mode)
        same = (new.mode == base.mode) & (new.offset == base.offset) & (new.mode != SLOW)
        moved_others += bool(np.any(got.offset[same] != base.offset[same]))
        base = got
    assert demoted_modes > 10 and moved_others > 10  # both kinds of change were exercised


def test_with_replay_only_the_lns_keeps_placements_the_env_replays():
    # every buffer fast is the optimum: op A 70 B, B 100, C 100 at 0.25 µs -> 62.5 µs (t0 0,
    # t3 20, t4 50, t1 50, t2 90). With one candidate offset the env cannot replay it: t1 0,
    # t3 40, t0 70, then t4 finds 40-B gaps at C. A neighbourhood of all five buffers finds it;
    # with Replay.only the LNS keeps only placements the env replays as they are
    inst, _ = replay_trap()
    order = xla_order(inst)
    start = placed(inst, {})
    for only in (False, True):
        replay = Replay(order, 1, only=only)
        best, _ = lns(inst, start, np.random.default_rng(0), deadline=time.perf_counter() + 5,
                      size=5, replay=replay)
        times = [total_time(inst, k.mode) for k in replay.kept]
        assert replay.kept and replay.kept[-1] is best and times == sorted(times, reverse=True)
        replayed = [repack_for_replay(inst, k, order, 1) is not None for k in replay.kept]
        if only:
            assert all(replayed) and total_time(inst, best.mode) > 62.5
        else:
            assert total_time(inst, best.mode) == pytest.approx(62.5) and not replayed[-1]


def test_cpsat_replay_loss_summary_by_hand():
    from benchmark_scripts import load_script

    summary = load_script("cpsat_replay_loss.py").summary
    rows = [{"status": "optimal", "replayed": True, "lost_points": 0.0},
            {"status": "feasible", "replayed": False, "lost_points": 0.3},
            {"status": "feasible", "replayed": True, "lost_points": 0.0},
            {"status": "unknown", "replayed": False, "lost_points": 0.9}]
    # 4 instances, 3 not proved, 2 replays failed; 1.2 / 4 = 0.3 over all, 1.2 / 3 = 0.4 over
    # those not proved; largest 0.9
    assert summary(rows) == pytest.approx({
        "instances": 4, "unproved": 3, "replay_failed": 2, "mean_lost_points": 0.3,
        "mean_lost_points_unproved": 0.4, "max_lost_points": 0.9})
