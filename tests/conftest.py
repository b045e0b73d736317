"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


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
