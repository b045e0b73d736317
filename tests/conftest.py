"""Shared pytest fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _sb3_logs_in_session_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SB3 models a test builds itself log under the session's temporary folder, not as a new
    ``SB3-<time>`` folder left in the system's temporary directory."""
    os.environ.setdefault("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3")))


@pytest.fixture
def system_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary directory redirected to a fresh ``tmp_path`` (what a call leaves
    there shows), with SB3_LOGDIR unset."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def ray_session():
    """One small local Ray for the whole test session (2 CPUs, no dashboard), shut down at exit."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory) -> Path:
    """A tiny LightGBM accelerator cost model (latency_ms over the accelerator space, 120
    designs on ResNet-18) saved to a folder; for the CLI error and fuzz tests."""
    import pandas as pd
    from mlsysgym.costmodels.tabular import LightGBMCostModel
    from mlsysgym.envs.accelerator_env import accelerator_space
    from mlsysgym.simulators.accelerator import AcceleratorSimulator

    space = accelerator_space()
    designs = space.sample(0, 120)
    frame = pd.DataFrame(designs)
    for k, v in AcceleratorSimulator().evaluate(designs, "resnet18", cache=False).items():
        frame[k] = v
    d = tmp_path_factory.mktemp("model")
    LightGBMCostModel(n_estimators=10, num_leaves=7).fit(frame, space.names, ["latency_ms"]).save(d)
    return d
