"""mlsysgym: a gym for ML-driven compilers and hardware design-space exploration."""

from __future__ import annotations

__version__ = "0.1.0"

# Gymnasium ids → entry points; registered on `import mlsysgym`. A process that has not
# imported mlsysgym (a SubprocVecEnv worker started by forkserver or spawn, e.g. under
# pytest or in a notebook) finds them through the module prefix:
# `gymnasium.make("mlsysgym:mlsysgym/Accelerator-v0")` imports mlsysgym first.
ENVS: dict[str, str] = {
    "mlsysgym/Accelerator-v0": "mlsysgym.envs.accelerator_env:AcceleratorEnv",
    "mlsysgym/MallocGame-v0": "mlsysgym.envs.malloc_game:MallocGameEnv",
    "mlsysgym/KernelScheduling-v0": "mlsysgym.envs.kernel_scheduling:KernelSchedulingEnv",
    "mlsysgym/KernelSchedulingStream-v0": "mlsysgym.envs.kernel_scheduling_stream:KernelSchedulingStreamEnv",
    "mlsysgym/DRAM-v0": "mlsysgym.envs.dram_env:DramEnv",
    "mlsysgym/LLMServing-v0": "mlsysgym.envs.serving_env:LLMServingEnv",
    "mlsysgym/SoC-v0": "mlsysgym.envs.soc_env:SocEnv",
}
# PettingZoo (multi-agent) env: mlsysgym.envs.dram_marl.parallel_env(**kwargs) ("DRAM-MultiAgent-v0").

# The design envs' episodes are their default `max_steps` designs (the env truncates them
# itself; for longer episodes pass max_steps=N and max_episode_steps=N to gymnasium.make).
# The sequential envs (mallocGame, scheduling) end on their own after one step per buffer / op.
MAX_EPISODE_STEPS: dict[str, int] = {
    "mlsysgym/Accelerator-v0": 100, "mlsysgym/DRAM-v0": 100, "mlsysgym/LLMServing-v0": 50,
    "mlsysgym/SoC-v0": 100,
}
# Native batched vector envs (one Evaluator call per step for all sub-envs):
# gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point").
VECTOR_ENTRY_POINTS: dict[str, str] = {
    "mlsysgym/Accelerator-v0": "mlsysgym.envs.vector:accelerator_vector_env",
    "mlsysgym/DRAM-v0": "mlsysgym.envs.vector:dram_vector_env",
    "mlsysgym/LLMServing-v0": "mlsysgym.envs.vector:serving_vector_env",
}


def _register_envs() -> None:
    try:
        import gymnasium
    except ImportError:  # lean install without the `rl` extra
        return
    for env_id, entry_point in ENVS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point,
                               max_episode_steps=MAX_EPISODE_STEPS.get(env_id),
                               vector_entry_point=VECTOR_ENTRY_POINTS.get(env_id))


_register_envs()
