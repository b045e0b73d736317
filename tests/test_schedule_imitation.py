"""Labelled training of the learned list scheduler (experiments/schedule_imitation.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from mlsysgym.agents.learned_schedule import (
    build_network,
    decode,
    edge_lists,
    heft_scores,
    instance_scale,
    op_features,
    torch_scores,
)
from mlsysgym.agents.scheduling_baselines import heft
from mlsysgym.experiments import schedule_imitation as si
from mlsysgym.simulators.multicore import random_instance

from tests.test_learned_schedule import _chain_fork


def test_rollout_labels_by_hand() -> None:
    # HEFT on the fork: a, b, c all on pe0, makespan 10 (see test_learned_schedule).
    # a on pe1 (0-4): b pe1 4-7, c pe1 7-8: makespan 8, cost 8/10 - 1 = -0.2.
    # b on pe1: 2 + 10 = 12-15, c on pe0 2-7: 15, cost +0.5. c on pe1: 12-13: cost +0.3.
    # Order at b's turn: c first gives c pe0 2-7, b pe0 7-10: 10, the same as b first: no row.
    fork = _chain_fork()
    pr, bias = heft_scores(fork)
    lab = si.rollout_data(fork, pr, bias, 1.0, steps=3, candidates=4, rng=np.random.default_rng(0))
    assert lab.makespan_us == pytest.approx(10.0)
    assert lab.ready.shape[0] == 0
    assert lab.pe_op.tolist() == [0, 1, 2]
    np.testing.assert_allclose(lab.finish.numpy(), [[2, 4], [5, 15], [10, 13]])
    np.testing.assert_allclose(lab.pe_cost.numpy(), [[0, -0.2], [0, 0.5], [0, 0.3]], atol=1e-6)


def test_training_on_rollout_labels_takes_the_better_pe() -> None:
    # The untrained network (PEFT) ties a's PEs (2 + 5 = 4 + 3) and takes pe0: makespan 10.
    # Its rollout labels say a on pe1 gives 8; training makes the greedy decode take it.
    fork = _chain_fork()
    net = build_network(1)
    scale = instance_scale(fork)
    x, pe = op_features(fork)
    src, dst = edge_lists(fork)
    inputs = tuple(torch.from_numpy(a) for a in (x, pe, src, dst))

    def ratio() -> np.ndarray:
        p, b = torch_scores(net, fork)
        return np.array([decode(fork, p, b * scale).makespan_us(fork) / 10.0])

    p0, b0 = torch_scores(net, fork)
    lab = si.rollout_data(fork, p0, b0 * scale, scale, 3, 4, np.random.default_rng(0))
    assert ratio()[0] == pytest.approx(1.0)
    rec = si.train_imitation(net, [(inputs, lab)], ratio, epochs=20, lr=0.01, eval_every=5,
                             log=lambda s: None)
    assert rec["val_ratios_init"] == [pytest.approx(1.0)]
    assert rec["val_ratios"] == [pytest.approx(0.8)]


def test_forcing_replays_the_expert_with_one_zero_cost_per_decision() -> None:
    inst = random_instance(40, 3, seed=2)
    sched = heft(inst)
    expert = {"order": sched.order.tolist(), "assign": sched.assignment.tolist()}
    lab = si.forcing_data(inst, expert, instance_scale(inst))
    assert lab.makespan_us == pytest.approx(sched.makespan_us(inst))
    for cost in (lab.order_cost, lab.pe_cost):
        assert ((cost == 0).sum(1) == 1).all()
    # the expert's order is HEFT's: its op has the highest upward rank of each ready set
    pr = heft_scores(inst)[0]
    rows = lab.ready.numpy()
    chosen = rows[np.arange(rows.shape[0]), (lab.order_cost == 0).numpy().argmax(1)]
    best = np.where(rows >= 0, pr[np.maximum(rows, 0)], -np.inf).max(1)
    np.testing.assert_allclose(pr[chosen], best)


def test_expected_regret_by_hand() -> None:
    # softmax of (0, ln 3) = (0.25, 0.75); regrets (0, 0.2): 0.15. A third, inf-cost entry is
    # not a candidate, whatever its logit.
    logits = torch.tensor([[0.0, math.log(3.0), 50.0]])
    cost = torch.tensor([[0.0, 0.2, math.inf]])
    assert float(si._expected_regret(logits, cost)) == pytest.approx(0.15)


@pytest.mark.slow
def test_trainer_rollout_method_writes_a_card_and_never_selects_worse_than_its_start(tmp_path) -> None:
    from mlsysgym.experiments.train_schedule_policy import main

    out = tmp_path / "p.onnx"
    assert main(["--method", "rollout", "--platforms", "soc_npu", "--max-ops", "120",
                 "--epochs", "3", "--eval-every", "1", "--lr", "0.03", "--rollout-steps", "4",
                 "--rollout-rounds", "1", "--out", str(out)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["method"].startswith("rollout labels")
    assert card["cpu_hours"] > 0 and out.is_file()
    # model selection keeps the start when nothing beats it on validation
    assert (card["validation"]["mean_improvement_vs_heft_pct"]
            >= card["validation_untrained"]["mean_improvement_vs_heft_pct"] - 1e-9)


def test_expert_file_errors_are_one_line(tmp_path) -> None:
    from mlsysgym.core.errors import MlsysgymError

    bad = tmp_path / "experts.json"
    bad.write_text("{not json")
    with pytest.raises(MlsysgymError, match="cannot read expert schedules"):
        si.load_experts(bad, ["a@soc_npu"])
    si.save_experts(bad, {"a@soc_npu": {"order": [0], "assign": [0]}}, {})
    assert si.load_experts(bad, ["a@soc_npu"])["a@soc_npu"]["order"] == [0]
    with pytest.raises(MlsysgymError, match="no expert schedule for b@balanced"):
        si.load_experts(bad, ["a@soc_npu", "b@balanced"])
