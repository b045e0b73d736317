"""mlsysgym.compiler: compiler passes driven by learned cost models — the IREE llvm-cpu
tile-size pass (:mod:`.tiling_pass`) and its whole-module verification and benchmarking
(:mod:`.tiling_verify`). Above the cost models (a pass uses them; they never use a pass), below
the agents and the CLI (``mlsysgym compile --tune``)."""
