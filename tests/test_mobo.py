"""The large-budget machinery of the BoTorch agents (agents/mobo.py): the batch-size schedule,
the greedy batch steps, how often the GP hyperparameters are fitted, and bad settings."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from mlsysgym.agents import mobo, search
from mlsysgym.agents.base import AgentConfigError, Outcome
from mlsysgym.agents.multiobjective import multiobjective
from mlsysgym.core.params import Integer
from mlsysgym.core.space import DesignSpace


class Line:
    """x, y in 0..9: f1 = x + 1, f2 = 10 - x + y (the front: y = 0, ten designs)."""

    name = "line"
    space = DesignSpace([Integer("x", 0, 9), Integer("y", 0, 9)])

    def evaluate(self, designs):
        metrics = [{"f1": d["x"] + 1.0, "f2": 10.0 - d["x"] + d["y"]} for d in designs]
        return Outcome(np.zeros(len(designs)), metrics, np.zeros(len(designs), dtype=bool))


def test_batch_size_grows_with_the_data():
    # max(q, ceil(n / q_growth)): 4 while n <= 80, then n / 20 rounded up
    assert [mobo.batch_size(n, 4, 20) for n in (0, 18, 80, 81, 1000, 1990, 2000)] == \
        [4, 4, 4, 5, 50, 100, 100]
    assert mobo.batch_size(1990, 4, 0) == 4  # q_growth = 0: a fixed batch


def test_greedy_takes_the_batch_in_at_most_max_steps_steps():
    choices = torch.arange(10, dtype=torch.double).unsqueeze(1)  # acquisition value = the index
    calls = []

    def acquisition(pending):
        calls.append(None if pending is None else pending[:, 0].tolist())
        return lambda x: x[:, 0, 0]

    # batch 5 in 2 steps: ceil(5 / 2) = 3 then the last 2, the second step knowing the first 3
    assert mobo._greedy(acquisition, choices, 5, 2) == [9, 8, 7, 6, 5]
    assert calls == [None, [9.0, 8.0, 7.0]]
    calls.clear()
    assert mobo._greedy(acquisition, choices, 3, 8) == [9, 8, 7]  # one per step: 3 steps
    assert len(calls) == 3


@pytest.mark.parametrize("agent", ["qnehvi", "qparego"])
def test_rounds_batches_and_gp_fits_follow_the_schedule(agent, monkeypatch):
    fits, batches = [], []
    fit_gp, greedy = mobo._fit_gp, mobo._greedy

    def counting_fit(tx, ty, warm, refit, maxiter):
        fits.append(refit)
        return fit_gp(tx, ty, warm, refit, maxiter)

    def counting_greedy(acquisition, choices, batch, steps, chunk=256):
        batches.append(batch)
        return greedy(acquisition, choices, batch, steps, chunk)

    monkeypatch.setattr(mobo, "_fit_gp", counting_fit)
    monkeypatch.setattr(mobo, "_greedy", counting_greedy)
    problem = multiobjective(Line(), ["f1", "f2"], reference=[11.0, 20.0])
    r = search(agent, problem, 20, seed=0, n_init=4, q=2, q_growth=5, refit_every=2,
               mc_samples=4, fit_maxiter=20)
    # after n evaluations the batch is max(2, ceil(n / 5)): n = 4, 6, 8, 10 → 2; 12, 15 → 3;
    # n = 18 → 4, cut to the 2 evaluations left: 7 rounds
    assert batches == [2, 2, 2, 2, 3, 3, 2]
    assert fits == [True, False, True, False, True, False, True]  # rounds 0, 2, 4, 6
    assert r.n_evaluations == 20 and len({tuple(d.values()) for d in r.designs}) == 20


@pytest.mark.parametrize("bad", [{"q_growth": -1}, {"refit_every": 0}, {"max_steps": 0},
                                 {"max_baseline": 0}, {"mc_samples": 2.5}, {"n_init": 1}])
def test_bad_hyperparameters_raise_agent_config_error(bad):
    problem = multiobjective(Line(), ["f1", "f2"], reference=[11.0, 20.0])
    with pytest.raises(AgentConfigError):
        search("qnehvi", problem, 10, seed=0, **bad)


def test_botorch_native_kernel_is_built_per_cpu_under_the_cache(tmp_path, monkeypatch) -> None:
    """BoTorch builds its qLogNEHVI kernel with -march=native; torch's default folder is keyed
    by source only, so a shared home gave an AVX2 CPU AVX-512 code (SIGILL, seen under
    .ci/emulate-avx2). The folder is per CPU under the cache, unless the user chose one."""
    from mlsysgym.core.target import target_id

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "")  # restored (or removed) after the test
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    monkeypatch.setenv("MLSYSGYM_CACHE_DIR", str(tmp_path))
    want = str(tmp_path / "torch-extensions" / target_id("host"))
    assert mobo.native_kernel_dir() == want == os.environ["TORCH_EXTENSIONS_DIR"]
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "mine"))
    assert mobo.native_kernel_dir() == str(tmp_path / "mine")
