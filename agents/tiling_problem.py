"""``tiling``: one op's IREE tile sizes as a design-space problem for every agent.

``make_problem({"name": "tiling", "kind": "matmul", "dims": [256, 256, 256],
"target_cpu": "x86-64-v3"})``: the design space is the op's candidate configurations on that
codegen target (:func:`~mlsysgym.costmodels.tiling_space.tiling_space`, IREE's own default
always a point of it), and a design is scored by the packaged tile-size cost model (or one
given by ``model``) as its predicted runtime relative to IREE's default, normalized by the
model's prediction for the default itself (so the default is exactly 1). The reward is
``-ln(predicted ratio)``: 0 for IREE's default, positive when predicted faster. What the
compiler pass does exhaustively (``tune_module`` scores every candidate in one batched call),
any agent can do here under a budget, on the same predictions.

Metrics per design: ``predicted_ratio`` (< 1: faster than IREE's default), ``spread`` (the
ensemble's standard deviation of the log ratio), ``ood`` (1.0 where the features are outside
the training data) and ``workgroups``. IREE is called once per problem, for the default
configuration (cached per target fingerprint).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mlsysgym.agents.base import Design, Outcome
from mlsysgym.agents.problems import UnknownProblemError, register_problem

__all__ = ["TilingSearch", "tiling"]


class TilingSearch:
    """A design-space Problem over one op's tile configurations (see the module docstring)."""

    kind = "design"

    def __init__(self, op_kind: str, dims: Sequence[int], stride: int = 1, dilation: int = 1,
                 target_cpu: str = "host", model: str | None = None) -> None:
        from mlsysgym.costmodels.tiling_model import load_tiling_model
        from mlsysgym.costmodels.tiling_space import (
            TilingInstance,
            default_config,
            knobs_from_config,
            tiling_space,
        )

        self.instance = TilingInstance(op_kind, tuple(int(d) for d in dims), stride, dilation)
        self.model = load_tiling_model(model, target_cpu)
        self.default = default_config(self.instance, target_cpu)
        self.default_knobs = knobs_from_config(self.instance, self.default)
        if self.default_knobs is None:
            raise UnknownProblemError(f"IREE's default configuration of {self.instance.key} is "
                                      f"not expressible by the tile knobs")
        self.space = tiling_space(self.instance, self.default, isa=self.model.isa)
        self.name = f"tiling:{self.instance.key}@{target_cpu}"
        self._default_ratio = 1.0
        self._default_ratio = self._predict([dict(self.default_knobs)])[0][0]

    def _predict(self, designs: Sequence[Design]) -> tuple[np.ndarray, ...]:
        """(ratio to the default, spread, ood, workgroups) of a batch, one model call."""
        from mlsysgym.costmodels.tiling_space import KNOBS, config_features, workgroups

        cols = {k: np.array([int(d[k]) for d in designs], dtype=np.int64) for k in KNOBS}
        feats = config_features(self.instance, cols, self.default_knobs, self.model.isa)
        ratio, spread, ood = self.model.predict(feats)
        return (np.asarray(ratio, dtype=float) / self._default_ratio, np.asarray(spread),
                np.asarray(ood), workgroups(self.instance, cols))

    def evaluate(self, designs: Sequence[Design]) -> Outcome:
        """Predicted ratios of a batch in one model call; designs outside the space's
        constraints are failed evaluations."""
        failed = ~self.space.feasible(self.space.to_columns(designs))
        ratio, spread, ood, groups = self._predict(designs)
        metrics: list[dict[str, float]] = [
            {"predicted_ratio": float(r), "spread": float(s), "ood": float(o),
             "workgroups": float(w)} for r, s, o, w in zip(ratio, spread, ood, groups)]
        return Outcome(-np.log(ratio), metrics, failed)


@register_problem("tiling")
def tiling(kind: str = "matmul", dims: Sequence[int] = (256, 256, 256), stride: int = 1,
           dilation: int = 1, target_cpu: str = "host", model: str | None = None) -> TilingSearch:
    """One op's tile sizes (``kind``: matmul, batch_matmul or conv_2d_nhwc_hwcf; ``dims`` its
    loop bounds) on codegen target ``target_cpu``, scored by the tile-size cost model."""
    return TilingSearch(kind, dims, stride, dilation, target_cpu, model)
