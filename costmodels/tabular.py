"""Tabular proxy models over design parameters (+ workload features) → metrics.

- :class:`LightGBMCostModel`: gradient-boosted trees, one booster per target (and per ensemble
  member: members differ by seed and row bagging), exported to one ONNX TreeEnsembleRegressor.
- :class:`MLPCostModel`: an ensemble of small MLPs trained together (stacked weights, one
  forward pass), early-stopped on the validation rows, exported with the dynamo ONNX exporter.

Both are :class:`~mlsysgym.costmodels.base.CostModel` subclasses: ``fit`` / ``predict`` /
``save``; load the saved form with ``CostModel.load`` (ONNX Runtime only).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, ClassVar

import numpy as np
from mlsysgym.costmodels.base import CostModel, CostModelError, NotFittedError
from mlsysgym.costmodels.onnx_export import lightgbm_to_onnx, torch_to_onnx

__all__ = ["MODEL_KINDS", "LightGBMCostModel", "MLPCostModel", "make_model"]


class LightGBMCostModel(CostModel):
    """Gradient boosting (LightGBM, L2 loss on the normalized targets), early-stopped."""

    kind = "lightgbm"
    input_dtype = "float64"

    DEFAULTS: ClassVar[dict[str, Any]] = {"n_estimators": 600, "learning_rate": 0.08, "num_leaves": 63,
                                "min_data_in_leaf": 5, "feature_fraction": 1.0,
                                "bagging_fraction": 0.9, "lambda_l2": 0.0, "threads": 1,
                                "early_stopping": 50}

    def __init__(self, members: int = 1, seed: int = 0, **hyperparameters: Any) -> None:
        unknown = set(hyperparameters) - set(self.DEFAULTS)
        if unknown:
            raise CostModelError(f"unknown LightGBM hyperparameter(s) {sorted(unknown)}; "
                                 f"known: {', '.join(self.DEFAULTS)}")
        super().__init__(members=members, seed=seed, **{**self.DEFAULTS, **hyperparameters})
        self.boosters: list[Any] = []

    def _fit_arrays(self, x: np.ndarray, z: np.ndarray, x_valid: np.ndarray | None,
                    z_valid: np.ndarray | None) -> None:
        import lightgbm as lgb

        hp = self.hyperparameters
        self.boosters = []
        for k in range(self.members):
            for j in range(z.shape[1]):
                params = {"objective": "l2", "learning_rate": hp["learning_rate"],
                          "num_leaves": hp["num_leaves"], "min_data_in_leaf": hp["min_data_in_leaf"],
                          "feature_fraction": hp["feature_fraction"], "lambda_l2": hp["lambda_l2"],
                          "bagging_fraction": hp["bagging_fraction"] if self.members > 1 or
                          hp["bagging_fraction"] < 1 else 1.0,
                          "bagging_freq": 1, "seed": self.seed * 1000 + k, "verbose": -1,
                          "num_threads": hp["threads"], "zero_as_missing": False,
                          "deterministic": True, "force_row_wise": True}
                train = lgb.Dataset(x, z[:, j], free_raw_data=False)
                callbacks = []
                valid_sets = []
                if x_valid is not None and z_valid is not None and len(x_valid):
                    valid_sets = [lgb.Dataset(x_valid, z_valid[:, j], reference=train)]
                    callbacks = [lgb.early_stopping(hp["early_stopping"], verbose=False)]
                b = lgb.train(params, train, num_boost_round=hp["n_estimators"],
                              valid_sets=valid_sets, callbacks=callbacks)
                if b.best_iteration and b.best_iteration < b.current_iteration():
                    b = lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration))
                self.boosters.append(b)

    def _raw_predict(self, x: np.ndarray) -> np.ndarray:
        if not self.boosters:
            raise NotFittedError("LightGBMCostModel is not fitted; call fit()")
        x = np.asarray(x, dtype=np.float64)
        return np.column_stack([b.predict(x) for b in self.boosters])

    def _export_onnx(self, n_inputs: int) -> bytes:
        return lightgbm_to_onnx(self.boosters, n_inputs, len(self.targets))


def _ensemble_mlp(n_in: int, n_out: int, members: int, hidden: int, layers: int, seed: int) -> Any:
    """A torch module running ``members`` MLPs in one batched pass: (n, d) → (n, members·n_out)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class EnsembleMLP(nn.Module):
        """``members`` MLPs with stacked weights (SiLU activations)."""

        def __init__(self) -> None:
            super().__init__()
            sizes = [n_in] + [hidden] * layers + [n_out]
            self.weights = nn.ParameterList()
            self.biases = nn.ParameterList()
            for a, b in itertools.pairwise(sizes):
                w = torch.empty(members, a, b)
                for k in range(members):
                    nn.init.kaiming_uniform_(w[k].T, a=5 ** 0.5)
                self.weights.append(nn.Parameter(w))
                self.biases.append(nn.Parameter(torch.zeros(members, 1, b)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x.unsqueeze(0)
            last = len(self.weights) - 1
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                h = torch.matmul(h, w) + b
                if i < last:
                    h = torch.nn.functional.silu(h)
            return h.permute(1, 0, 2).reshape(x.shape[0], members * n_out)

    return EnsembleMLP()


class MLPCostModel(CostModel):
    """An ensemble of MLPs (AdamW, one-cycle learning rate, MSE), early-stopped on validation."""

    kind = "mlp"
    input_dtype = "float32"

    DEFAULTS: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 3, "epochs": 60, "batch_size": 256,
                                "learning_rate": 3e-3, "weight_decay": 1e-5, "threads": 1}

    def __init__(self, members: int = 4, seed: int = 0, **hyperparameters: Any) -> None:
        unknown = set(hyperparameters) - set(self.DEFAULTS)
        if unknown:
            raise CostModelError(f"unknown MLP hyperparameter(s) {sorted(unknown)}; "
                                 f"known: {', '.join(self.DEFAULTS)}")
        super().__init__(members=members, seed=seed, **{**self.DEFAULTS, **hyperparameters})
        self.module: Any = None

    def _fit_arrays(self, x: np.ndarray, z: np.ndarray, x_valid: np.ndarray | None,
                    z_valid: np.ndarray | None) -> None:
        import torch

        hp = self.hyperparameters
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(int(hp["threads"]))
        try:
            k, t = self.members, z.shape[1]
            net = _ensemble_mlp(x.shape[1], t, k, int(hp["hidden"]), int(hp["layers"]), self.seed)
            xt = torch.tensor(x, dtype=torch.float32)
            zt = torch.tensor(z, dtype=torch.float32)
            xv = torch.tensor(x_valid, dtype=torch.float32) if x_valid is not None else None
            zv = torch.tensor(z_valid, dtype=torch.float32) if z_valid is not None else None
            n, bs, epochs = len(xt), int(hp["batch_size"]), int(hp["epochs"])
            steps = epochs * ((n + bs - 1) // bs)
            opt = torch.optim.AdamW(net.parameters(), lr=hp["learning_rate"],
                                    weight_decay=hp["weight_decay"])
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["learning_rate"],
                                                        total_steps=max(steps, 1))
            gen = torch.Generator().manual_seed(self.seed)
            best, best_state = float("inf"), None
            for _ in range(epochs):
                net.train()
                perm = torch.randperm(n, generator=gen)
                for i in range(0, n, bs):
                    idx = perm[i:i + bs]
                    pred = net(xt[idx]).reshape(len(idx), k, t)
                    loss = ((pred - zt[idx].unsqueeze(1)) ** 2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                if xv is not None and zv is not None and len(xv):
                    net.eval()
                    with torch.no_grad():
                        v = float(((net(xv).reshape(len(xv), k, t) - zv.unsqueeze(1)) ** 2).mean())
                    if v < best:
                        best, best_state = v, copy.deepcopy(net.state_dict())
            if best_state is not None:
                net.load_state_dict(best_state)
            self.module = net.eval()
        finally:
            torch.set_num_threads(prev_threads)

    def _raw_predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self.module is None:
            raise NotFittedError("MLPCostModel is not fitted; call fit()")
        with torch.no_grad():
            return self.module(torch.tensor(np.asarray(x, dtype=np.float32))).numpy()

    def _export_onnx(self, n_inputs: int) -> bytes:
        return torch_to_onnx(self.module, n_inputs)


MODEL_KINDS: dict[str, type[CostModel]] = {"lightgbm": LightGBMCostModel, "mlp": MLPCostModel}


def make_model(kind: str, **kwargs: Any) -> CostModel:
    """A new, unfitted model of a kind in :data:`MODEL_KINDS` (``lightgbm`` or ``mlp``)."""
    if kind not in MODEL_KINDS:
        raise CostModelError(f"unknown cost model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[kind](**kwargs)
