"""mlsysgym.agents: search agents behind one interface, ``search(agent, problem, budget, seed, **hp)``.

Importing this package registers every agent by name — ``random``, ``random_walk``, ``ga``,
``aco``, ``bo``, ``tpe``, ``optuna_gp``, ``ppo``, ``a2c``, ``dqn``, ``sac``, ``maskable_ppo``
— without importing torch, BoTorch, Optuna or Stable-Baselines3 (each agent imports what it
needs when it runs). ``AGENT_HYPERPARAMETERS[name]`` is a small grid of each agent's
hyperparameters (for hyperparameter-sensitivity studies).
"""

from __future__ import annotations

from typing import Any

from mlsysgym.agents import (  # noqa: F401  (importing registers the agents and problems)
    aco,
    bayesopt,
    genetic,
    learned_malloc,
    learned_schedule,
    malloc_agents,
    malloc_baselines,
    malloc_problem,
    mcts,
    mobo,
    multiobjective,
    optuna_agents,
    random_walk,
    rl,
    scheduling_baselines,
    scheduling_problem,
    scheduling_search,
    sequential,
    tiling_problem,
)
from mlsysgym.agents.base import (
                                  AGENTS,
                                  AgentConfigError,
                                  Budget,
                                  BudgetedProblem,
                                  BudgetExhausted,
                                  Outcome,
                                  Problem,
                                  SearchResult,
                                  UnknownAgentError,
                                  agent_function,
                                  agents_for,
                                  register_agent,
                                  search,
)
from mlsysgym.agents.sequential import EpisodeProblem, episode_design

AGENT_HYPERPARAMETERS: dict[str, dict[str, list[Any]]] = {
    "random": random_walk.RANDOM_HYPERPARAMETERS,
    "random_walk": random_walk.HYPERPARAMETERS,
    "ga": genetic.HYPERPARAMETERS,
    "aco": aco.HYPERPARAMETERS,
    "bo": bayesopt.HYPERPARAMETERS,
    "tpe": optuna_agents.TPE_HYPERPARAMETERS,
    "nsga2": multiobjective.NSGA2_HYPERPARAMETERS,
    "qnehvi": mobo.HYPERPARAMETERS,
    "qparego": mobo.HYPERPARAMETERS,
    "optuna_gp": optuna_agents.GP_HYPERPARAMETERS,
    "ppo": rl.PPO_HYPERPARAMETERS,
    "a2c": rl.A2C_HYPERPARAMETERS,
    "dqn": rl.DQN_HYPERPARAMETERS,
    "sac": rl.SAC_HYPERPARAMETERS,
    "maskable_ppo": {**scheduling_search.LEARNED_HYPERPARAMETERS,
                     **malloc_agents.PPO_MALLOC_HYPERPARAMETERS, **rl.MASKABLE_PPO_HYPERPARAMETERS},
    "mcts": malloc_agents.MCTS_MALLOC_HYPERPARAMETERS,
    "pilot": malloc_agents.PILOT_HYPERPARAMETERS,
    "local_search": {**scheduling_search.LOCAL_SEARCH_HYPERPARAMETERS,
                     **malloc_agents.LOCAL_SEARCH_HYPERPARAMETERS},
    "cpsat": {"num_workers": [1, 2], "time_limit_s": [2.0, 10.0, 60.0]},
    "heft": scheduling_baselines.HEFT_HYPERPARAMETERS,
    "policy_local_search": {**scheduling_search.LEARNED_HYPERPARAMETERS,
                            **scheduling_search.LOCAL_SEARCH_HYPERPARAMETERS,
                            "proposal": ["uniform", "policy"]},
}

__all__ = ["AGENTS", "AGENT_HYPERPARAMETERS", "AgentConfigError", "Budget", "BudgetExhausted",
           "BudgetedProblem", "EpisodeProblem", "Outcome", "Problem", "SearchResult",
           "UnknownAgentError", "agent_function", "agents_for", "episode_design", "register_agent", "search"]
