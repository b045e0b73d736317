"""Training of the MLIR text model (torch).

The network is trained with AdamW on MSE (+ an in-batch pairwise logistic ranking loss,
``rank_weight``) of the standardized log target, plus ``aux_weight`` × MSE of auxiliary
targets (log FLOPs, bytes read and written, MACs, iteration points, each iteration-domain size
and its alignment — analytic functions of the text, used as extra training targets only),
early-stopped on a validation split; ``members`` > 1 trains an ensemble whose spread is the
prediction's ``std``; member k early-stops on fold k of the training rows (disjoint folds), so
the ensemble trains on every row and ``info.validation`` scores out-of-fold predictions.
``pretrain`` > 0 first trains the encoder on emitted, unmeasured kernels (:func:`pretrain`).
Training uses one torch thread by default: on this shared 2-core machine one thread ran a
training step 8× faster than two.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from mlsysgym.costmodels.base import FitInfo, TargetSpec, data_hash, unit_of
from mlsysgym.costmodels.mlir_text.export import _export, _members_output
from mlsysgym.costmodels.mlir_text.network import _build_network
from mlsysgym.costmodels.mlir_text.tokens import (
    UNK,
    EncodedTexts,
    MlirTextError,
    MlirTokenizer,
    _take,
    _texts_of,
)

if TYPE_CHECKING:
    from mlsysgym.costmodels.mlir_text.model import MlirTextCostModel


def _aux_labels(frame: Any, wanted: Sequence[str]) -> Any:
    """The auxiliary training targets of a kernel frame: each wanted column the frame has, the
    others computed from its ``kind``/``shape`` columns when it has them
    (:func:`mlsysgym.costmodels.mlir_pretrain.analytic_labels`); unavailable ones are skipped."""
    cols = {c: frame[c] for c in wanted if c in frame.columns}
    missing = [c for c in wanted if c not in cols]
    if missing and {"kind", "shape"} <= set(frame.columns):
        from mlsysgym.costmodels.mlir_pretrain import label_frame

        computed = label_frame(frame)
        cols.update({c: computed[c] for c in missing if c in computed.columns})
    import pandas as pd

    return pd.DataFrame({c: cols[c] for c in wanted if c in cols}, index=frame.index)


def _sgd_step(net: Any, opt: Any, sched: Any, loss: Any) -> None:
    """One optimizer step on ``loss``: gradients clipped to norm 1, then the LR schedule steps."""
    import torch

    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    sched.step()


def fit_model(model: MlirTextCostModel, frame: Any, targets: Sequence[str],
              valid_fraction: float = 0.1, valid_frame: Any = None,
              unlabeled: Any = None) -> MlirTextCostModel:
    """Train ``model`` on a DataFrame's text column → the (single) target, log-transformed
    (:meth:`MlirTextCostModel.fit` documents the arguments): tokenizer, auxiliary labels,
    validation folds, optional pretraining, one network per member, ONNX export, and the
    validation report."""
    t0 = time.perf_counter()
    if len(targets) != 1:
        raise MlirTextError(f"the MLIR text model predicts one target, got {list(targets)}")
    target = targets[0]
    for col in (model.text_column, target):
        if col not in frame.columns:
            raise MlirTextError(f"frame has no {col!r} column; columns are "
                                f"{list(frame.columns)[:12]}")
    y = frame[target].to_numpy(dtype=np.float64)
    if len(frame) < 8 or not np.isfinite(y).all() or (y <= 0).any():
        raise MlirTextError(f"need >= 8 rows with positive finite {target!r}; drop bad rows")
    texts = _texts_of(frame, model.text_column)
    hp = model.hyperparameters
    seeds, unmeasured = frame, []
    if unlabeled is not None and len(unlabeled) and int(hp["pretrain"]) > 0:
        from mlsysgym.costmodels.mlir_pretrain import seed_frame

        seeds = seed_frame(frame, unlabeled)
        unmeasured = seeds["mlir"].iloc[len(frame):].tolist()
    labels = _aux_labels(frame, hp["aux_targets"])
    aux_cols = list(labels.columns)
    aux = np.log1p(np.maximum(labels.to_numpy(np.float64), 0.0)) if aux_cols \
        else np.zeros((len(y), 0))
    aux_mu, aux_sd = aux.mean(0), np.maximum(aux.std(0), 1e-9)
    if aux.shape[1]:
        aux = (aux - aux_mu) / aux_sd
    model.aux_targets = aux_cols
    model.tokenizer = MlirTokenizer.fit(texts, int(hp["min_count"]), int(hp["max_len"]),
                                        bool(hp["compact"]), unmeasured)
    lt = np.log(y)
    model.targets = [TargetSpec(target, unit_of(target), "log", float(lt.mean()),
                                float(lt.std()) or 1.0)]
    spec = model.targets[0]
    enc = model.tokenizer.encode(texts)
    z = spec.forward(y)
    # validation rows per member: valid_frame for all, else member k holds out fold k of
    # one permutation (disjoint folds while members × valid_fraction ≤ 1), so an ensemble
    # trains on every row and each row's out-of-fold prediction scores the fit
    if valid_frame is not None:
        va_texts = _texts_of(valid_frame, model.text_column)
        va_y = valid_frame[target].to_numpy(dtype=np.float64)
        va_enc = model.tokenizer.encode(va_texts)
        folds = [(np.arange(len(y)), None)] * model.members
    else:
        perm = np.random.default_rng(model.seed).permutation(len(y))
        nv = max(1, round(len(y) * valid_fraction))
        folds = []
        for k in range(model.members):
            start = (k * nv) % len(y)
            va = np.roll(perm, -start)[:nv]
            folds.append((np.setdiff1d(np.arange(len(y)), va), va))
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(int(hp["threads"]))
    try:
        init = None
        if int(hp["pretrain"]) > 0 and aux_cols:
            init = pretrain(model, seeds, aux_cols, aux_mu, aux_sd)
        nets, histories = [], []
        for k, (tr, va) in enumerate(folds):
            v_enc, v_z = (va_enc, spec.forward(va_y)) if va is None else (_take(enc, va), z[va])
            nets.append(train_member(model, _take(enc, tr), z[tr], v_enc, v_z, aux[tr],
                                     model.seed * 1000 + k, init))
            histories.append(model.history)
        model.history = [h for hs in histories for h in hs]
        model.module = _members_output(nets)
        model.onnx_bytes = _export(model.module, int(hp["max_len"]))
    finally:
        torch.set_num_threads(prev)
    from mlsysgym.costmodels.metrics import regression_report

    if valid_frame is not None:
        pv = model.decode(model._raw_predict(va_enc), va_enc.ood).values[target]
    else:  # out-of-fold: each validation row predicted by the member that did not see it
        rows = np.concatenate([va for _, va in folds])
        cols = np.concatenate([np.full(len(va), k) for k, (_, va) in enumerate(folds)])
        first = np.unique(rows, return_index=True)[1]
        rows, cols = rows[first], cols[first]
        out = np.concatenate([model._raw_predict(_take(enc, rows[i:i + 256]))
                              for i in range(0, len(rows), 256)])
        va_y = y[rows]
        pv = spec.inverse(out[np.arange(len(rows)), cols])
    model.info = FitInfo(rows=len(y), valid_rows=len(va_y),
                         data_hash=data_hash(enc.tokens.astype(np.float64), lt),
                         validation={target: regression_report(va_y, pv)})
    for col, attr in (("evaluator_id", "source_evaluators"), ("workload_id", "workloads")):
        if col in frame.columns:
            setattr(model.info, attr, sorted({str(v) for v in frame[col].dropna().unique()}))
    model.info.fit_seconds = time.perf_counter() - t0
    model._finish_identity()
    return model


def _network(model: MlirTextCostModel, n_out: int, seed: int) -> Any:
    """A fresh network of ``model``'s hyperparameters and vocabulary with ``n_out`` outputs."""
    hp = model.hyperparameters
    assert model.tokenizer is not None
    return _build_network(len(model.tokenizer), int(hp["max_len"]), int(hp["d_model"]),
                          int(hp["heads"]), int(hp["layers"]), int(hp["ffn"]),
                          float(hp["dropout"]), seed, n_out, str(hp["pool"]),
                          bool(hp["alignment"]), int(hp["readouts"]), int(hp["periodic"]))


def pretrain(model: MlirTextCostModel, frame: Any, aux_cols: Sequence[str], mu: np.ndarray,
             sd: np.ndarray) -> dict[str, Any]:
    """Weights of a network trained only on the auxiliary outputs (analytic labels,
    standardized like the measured rows') of ``pretrain`` emitted, unmeasured kernels."""
    import torch
    from mlsysgym.costmodels.mlir_pretrain import pretrain_frame

    hp = model.hyperparameters
    assert model.tokenizer is not None
    for col in ("kind", "shape"):
        if col not in frame.columns:
            raise MlirTextError(f"pretraining emits kernels from the frame's kind/shape "
                                f"columns; the frame has no {col!r}")
    t0 = time.perf_counter()
    gen = pretrain_frame(frame, int(hp["pretrain"]), seed=model.seed + 7919)
    enc = model.tokenizer.encode(_texts_of(gen, "mlir"))
    aux = (np.column_stack([np.log1p(gen[c].to_numpy(np.float64)) for c in aux_cols])
           - mu) / sd
    net = _network(model, 1 + len(aux_cols), model.seed * 1000 + 999)
    x_tok, x_num = torch.from_numpy(enc.tokens), torch.from_numpy(enc.numbers)
    x_slot = torch.from_numpy(enc.slots)
    ya = torch.tensor(aux, dtype=torch.float32)
    lengths = (enc.tokens != 0).sum(1)
    n, bs, epochs = len(ya), 64, int(hp["pretrain_epochs"])
    opt = torch.optim.AdamW(net.parameters(), lr=float(hp["learning_rate"]),
                            weight_decay=float(hp["weight_decay"]))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=float(hp["learning_rate"]),
        total_steps=max(epochs * ((n + bs - 1) // bs), 1), pct_start=0.15)
    gen_rng = np.random.default_rng(model.seed + 7919)
    net.train()
    for epoch in range(epochs):
        perm = gen_rng.permutation(n)
        total = 0.0
        for i in range(0, n, bs):
            rows = perm[i:i + bs]
            idx = torch.from_numpy(rows)
            width = int(lengths[rows].max())
            pred = net(x_tok[idx, :width], x_num[idx, :width], x_slot[idx, :width])
            loss = ((pred[:, 1:] - ya[idx]) ** 2).mean()
            _sgd_step(net, opt, sched, loss)
            total += loss.item() * len(rows)
        model.pretrain_history.append({"epoch": epoch + 1, "aux_mse": total / n,
                                       "seconds": time.perf_counter() - t0})
    return net.state_dict()


def train_member(model: MlirTextCostModel, tr: EncodedTexts, z: np.ndarray, va: EncodedTexts,
                 zv: np.ndarray, aux: np.ndarray, seed: int,
                 init: dict[str, Any] | None = None) -> Any:
    """The trained network: MSE on the standardized log target plus ``aux_weight`` × MSE on
    the standardized log auxiliary targets (FLOPs, bytes, sizes, alignments: what the text
    determines, which teaches the network to read shapes), early-stopped on the target's
    validation MSE."""
    import copy

    import torch

    hp = model.hyperparameters
    assert model.tokenizer is not None
    net = _network(model, 1 + aux.shape[1], seed)
    if init is not None:  # fine-tune from the pretrained encoder and heads
        net.load_state_dict(init)
    x_tok, x_num = torch.from_numpy(tr.tokens), torch.from_numpy(tr.numbers)
    x_slot = torch.from_numpy(tr.slots)
    yt = torch.tensor(np.column_stack([z, aux]), dtype=torch.float32)
    w_aux = float(hp["aux_weight"])
    v_tok, v_num = torch.from_numpy(va.tokens), torch.from_numpy(va.numbers)
    v_slot = torch.from_numpy(va.slots)
    yv = torch.tensor(zv, dtype=torch.float32).unsqueeze(1)
    lengths = (tr.tokens != 0).sum(1)
    n, bs, epochs = len(yt), int(hp["batch_size"]), int(hp["epochs"])
    steps_per_epoch = (n + bs - 1) // bs
    lr = float(hp["learning_rate"]) * (float(hp["finetune_lr_scale"]) if init else 1.0)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=float(hp["weight_decay"]))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(epochs * steps_per_epoch, 1), pct_start=0.15)
    gen = np.random.default_rng(seed)
    w_rank = float(hp["rank_weight"])
    p_drop = float(hp["token_dropout"])
    tgen = torch.Generator().manual_seed(seed)
    unk_id = model.tokenizer.vocab[UNK]
    named = torch.from_numpy((tr.tokens > 0) & (tr.numbers == 0.0))
    best, best_state, since = math.inf, None, 0
    model.history = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        perm = gen.permutation(n)
        total = 0.0
        for i in range(0, n, bs):
            idx = torch.from_numpy(perm[i:i + bs])
            width = int(lengths[perm[i:i + bs]].max())
            toks = x_tok[idx, :width]
            if p_drop > 0:  # word dropout: name tokens → <unk>, to rely on structure too
                hit = (torch.rand(toks.shape, generator=tgen) < p_drop) & named[idx, :width]
                toks = torch.where(hit, torch.full_like(toks, unk_id), toks)
            pred = net(toks, x_num[idx, :width], x_slot[idx, :width])
            err = (pred - yt[idx]) ** 2
            loss = err[:, 0].mean()
            if err.shape[1] > 1:
                loss = loss + w_aux * err[:, 1:].mean()
            if w_rank > 0:  # in-batch pairwise logistic ranking loss on the target
                dy = yt[idx, 0].unsqueeze(0) - yt[idx, 0].unsqueeze(1)
                dp = pred[:, 0].unsqueeze(0) - pred[:, 0].unsqueeze(1)
                keep = (dy.abs() > 0.02).to(torch.float32)
                pair = torch.nn.functional.softplus(-torch.sign(dy) * dp * 4.0) * keep
                loss = loss + w_rank * pair.sum() / keep.sum().clamp(min=1.0)
            _sgd_step(net, opt, sched, loss)
            total += loss.item() * len(idx)
        net.eval()
        with torch.no_grad():
            v = float(torch.nn.functional.mse_loss(net(v_tok, v_num, v_slot)[:, :1], yv))
        model.history.append({"epoch": epoch + 1, "train_mse": total / n, "valid_mse": v,
                              "seconds": time.perf_counter() - t0})
        if v < best - 1e-5:
            best, best_state, since = v, copy.deepcopy(net.state_dict()), 0
        else:
            since += 1
        if since >= int(hp["patience"]) or time.perf_counter() - t0 > float(hp["max_seconds"]):
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval()
