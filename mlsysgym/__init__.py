"""mlsysgym: a gym for ML-driven compilers and hardware design-space exploration."""

from __future__ import annotations

__version__ = "0.1.0"

# Gymnasium ids → entry points; registered on `import mlsysgym` (or use
# `gymnasium.make("mlsysgym:mlsysgym/Accelerator-v0")`, which imports us first).
ENVS: dict[str, str] = {
    "mlsysgym/Accelerator-v0": "mlsysgym.envs.accelerator_env:AcceleratorEnv",
    "mlsysgym/MallocGame-v0": "mlsysgym.envs.malloc_game:MallocGameEnv",
    "mlsysgym/KernelScheduling-v0": "mlsysgym.envs.kernel_scheduling:KernelSchedulingEnv",
    "mlsysgym/KernelSchedulingStream-v0": "mlsysgym.envs.kernel_scheduling_stream:KernelSchedulingStreamEnv",
    "mlsysgym/DRAM-v0": "mlsysgym.envs.dram_env:DramEnv",
    "mlsysgym/LLMServing-v0": "mlsysgym.envs.serving_env:LLMServingEnv",
}
# PettingZoo (multi-agent) env: mlsysgym.envs.dram_marl.parallel_env(**kwargs) ("DRAM-MultiAgent-v0").


def _register_envs() -> None:
    try:
        import gymnasium
    except ImportError:  # lean install without the `rl` extra
        return
    for env_id, entry_point in ENVS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)


_register_envs()
