"""SoC design (FARSI-style): a platform of CPU / GPU / DSP / NPU blocks, system SRAM, a NoC and
DRAM channels, judged on a set of workloads mapped onto it with HEFT (or HEFT plus a search).

- :mod:`.components` — the per-block area / power / throughput figures and their sources;
- :mod:`.platform` — the design space (:func:`soc_space`), the reference design, and
  :func:`soc_platform` (design → multi-core Platform + uncore figures);
- :mod:`.workloads` — workload sets of zoo graphs and job streams, precomputed once;
- :mod:`.mapping` — op times, HEFT / local-search mapping, energy of a run;
- :mod:`.evaluator` — :class:`SocEvaluator` (registered as ``"soc"``).
"""

from mlsysgym.simulators.soc.evaluator import METRICS, SocEvaluator, evaluate_platform
from mlsysgym.simulators.soc.platform import (
    REFERENCE_DESIGN,
    SOC_SPACE,
    SocPlatform,
    soc_platform,
    soc_space,
)
from mlsysgym.simulators.soc.workloads import (
    WORKLOAD_SETS,
    SocWorkloadError,
    WorkloadSet,
    workload_set,
)

__all__ = ["METRICS", "REFERENCE_DESIGN", "SOC_SPACE", "WORKLOAD_SETS", "SocEvaluator",
           "SocPlatform", "SocWorkloadError", "WorkloadSet", "evaluate_platform", "soc_platform",
           "soc_space", "workload_set"]
