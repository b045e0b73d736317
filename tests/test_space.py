"""DesignSpace: declaration, validation errors, encodings, sampling, conversions to libraries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mlsysgym.core.constraints import Constraint
from mlsysgym.core.errors import (
    ConstraintViolationError,
    DesignError,
    MissingParameterError,
    MlsysgymError,
    NotPowerOfTwoError,
    OutOfRangeError,
    ParameterTypeError,
    SpaceDefinitionError,
    UnknownParameterError,
)
from mlsysgym.core.params import Categorical, Float, Integer, PowerOfTwo
from mlsysgym.core.space import DesignSpace


def small() -> DesignSpace:
    """3 dataflows × 4 row counts (4, 8, 16, 32) × 3 PE counts (14, 28, 42) = 36 designs."""
    return DesignSpace([
        Categorical("dataflow", ("ws", "os", "is")),
        PowerOfTwo("rows", 4, 32),
        Integer("pes", 14, 42, step=14),
    ])


def constrained() -> DesignSpace:
    """Buffers 1..8 KB each (powers of two: 4 levels); total must be <= 12 KB."""
    return DesignSpace([
        PowerOfTwo("ifmap_kb", 1, 8), PowerOfTwo("filter_kb", 1, 8), PowerOfTwo("ofmap_kb", 1, 8),
    ], constraints=[Constraint("ifmap_kb + filter_kb + ofmap_kb <= 12", "buffers exceed 12 KB")])


def mixed() -> DesignSpace:
    return DesignSpace([
        Categorical("policy", ("Open", "Closed")),
        Integer("depth", 1, 10),
        Float("clock_ghz", 0.5, 2.0),
        Float("vdd", 0.1, 10.0, log=True),
    ], float_levels=5)


# ---- sizes and levels ----------------------------------------------------------------------
def test_size_counted_by_hand():
    assert small().size() == 3 * 4 * 3 == 36
    assert small().levels("rows") == [4, 8, 16, 32]
    assert small().levels("pes") == [14, 28, 42]
    # DRAMGym's RequestBufferSize 1..128 powers of two: 8 levels
    assert DesignSpace([PowerOfTwo("b", 1, 128)]).size() == 8
    # a grid whose top is off the step: 0, 3, 6, 9 (10 excluded)
    assert DesignSpace([Integer("x", 0, 10, step=3)]).levels("x") == [0, 3, 6, 9]
    assert mixed().size() == math.inf
    assert mixed().size(float_levels=5) == 2 * 10 * 5 * 5


def test_count_feasible_counted_by_hand():
    # triples from {1, 2, 4, 8} with sum <= 12: with no 8, all 3^3 = 27 (max 4+4+4 = 12);
    # with exactly one 8 the other two sum to <= 4: (1,1) (1,2) (2,1) (2,2), in 3 positions = 12;
    # two 8s exceed 12. Total 39.
    vals = [1, 2, 4, 8]
    by_hand = sum(1 for a in vals for b in vals for c in vals if a + b + c <= 12)
    assert by_hand == 39
    sp = constrained()
    assert sp.size() == 64
    assert sp.count_feasible() == 39
    assert len(sp.enumerate()) == 39 and len(sp.enumerate(feasible_only=False)) == 64


# ---- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("design, err, text", [
    ({"dataflow": "ws", "rows": 4, "pes": 14, "cols": 3}, UnknownParameterError, "'cols'"),
    ({"dataflow": "ws", "row": 4, "pes": 14}, UnknownParameterError, "did you mean 'rows'"),
    ({"dataflow": "ws", "rows": 4}, MissingParameterError, "pes"),
    ({"dataflow": "ws", "rows": 64, "pes": 14}, OutOfRangeError, "out of range"),
    ({"dataflow": "ws", "rows": 4, "pes": 15}, OutOfRangeError, "grid"),
    ({"dataflow": "xs", "rows": 4, "pes": 14}, OutOfRangeError, "not one of"),
    ({"dataflow": "ws", "rows": "4", "pes": 14}, ParameterTypeError, "got str"),
    ({"dataflow": 1, "rows": 4, "pes": 14}, ParameterTypeError, "got int"),
    ({"dataflow": "ws", "rows": 4.5, "pes": 14}, ParameterTypeError, "got float"),
    ({"dataflow": "ws", "rows": 12, "pes": 14}, NotPowerOfTwoError, "not a power of two"),
    ({"dataflow": "ws", "rows": True, "pes": 14}, ParameterTypeError, "bool"),
])
def test_validation_errors_are_typed_and_one_line(design, err, text):
    with pytest.raises(err, match=text) as info:
        small().validate(design)
    assert isinstance(info.value, DesignError) and isinstance(info.value, MlsysgymError)
    assert "\n" not in str(info.value)


def test_constraint_violation_and_canonical_values():
    sp = constrained()
    with pytest.raises(ConstraintViolationError, match="buffers exceed 12 KB"):
        sp.validate({"ifmap_kb": 8, "filter_kb": 4, "ofmap_kb": 1})
    ok = sp.validate({"ofmap_kb": np.int64(2), "ifmap_kb": 8.0, "filter_kb": 2})
    assert ok == {"ifmap_kb": 8, "filter_kb": 2, "ofmap_kb": 2}
    assert list(ok) == ["ifmap_kb", "filter_kb", "ofmap_kb"]
    assert all(type(v) is int for v in ok.values())
    assert not sp.is_valid({"ifmap_kb": 8, "filter_kb": 8, "ofmap_kb": 8})


def test_callable_and_expression_constraints():
    def scalar_only(d):  # uses `and`: works per design, not on arrays
        return not (d["dataflow"] == "os" and d["rows"] > 8)

    sp = DesignSpace(small().params, constraints=[Constraint(scalar_only, "os needs rows <= 8")])
    sp2 = DesignSpace(small().params, constraints=["dataflow != 'os' or rows <= 8"])
    # feasible: 36 minus os × {16, 32} × 3 pes = 30
    assert sp.count_feasible() == sp2.count_feasible() == 30
    with pytest.raises(ConstraintViolationError, match="os needs rows <= 8"):
        sp.validate({"dataflow": "os", "rows": 16, "pes": 14})
    assert DesignSpace(small().params, ["dataflow in ('ws', 'is')"]).count_feasible() == 24


def test_bad_declarations():
    with pytest.raises(SpaceDefinitionError, match="power of two"):
        PowerOfTwo("x", 3, 16)
    with pytest.raises(SpaceDefinitionError, match="low <= high"):
        Integer("x", 5, 1)
    with pytest.raises(SpaceDefinitionError, match="duplicate"):
        DesignSpace([Integer("x", 0, 1), Integer("x", 0, 2)])
    with pytest.raises(SpaceDefinitionError, match="unknown parameter"):
        DesignSpace([Integer("x", 0, 1)], ["x + y <= 2"])
    with pytest.raises(SpaceDefinitionError, match="unknown function"):
        DesignSpace([Integer("x", 0, 1)], ["__import__('os').system('true')"])
    with pytest.raises(SpaceDefinitionError, match="only arithmetic"):
        DesignSpace([Integer("x", 0, 1)], ["x.__class__ == 1"])
    with pytest.raises(SpaceDefinitionError, match="log=True"):
        Float("f", 0.0, 1.0, log=True)


# ---- encodings -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["index", "unit", "ordinal", "onehot"])
def test_exact_round_trip_for_every_design(kind):
    sp = small()
    designs = sp.enumerate()
    assert len(designs) == 36
    enc = sp.encode_batch(designs, kind)
    assert enc.shape == (36, sp.onehot_dim if kind == "onehot" else 3)
    assert sp.decode_batch(enc, kind) == designs
    # distinct designs, distinct codes
    assert len({tuple(r) for r in enc.tolist()}) == 36


def test_encodings_by_hand():
    sp = small()
    d = {"dataflow": "is", "rows": 8, "pes": 42}
    np.testing.assert_array_equal(sp.encode(d, "index"), [2, 1, 2])
    np.testing.assert_allclose(sp.encode(d, "unit"), [2.5 / 3, 1.5 / 4, 2.5 / 3])
    np.testing.assert_array_equal(sp.encode(d, "onehot"), [0, 0, 1, 0, 1, 0, 0, 0, 0, 1])
    # every point of a unit bin decodes to the bin's level
    assert sp.decode(np.array([0.999, 0.0, 0.34]), "unit") == {"dataflow": "is", "rows": 4,
                                                                "pes": 28}
    assert sp.decode(np.array([1.0, 1.0, 1.0]), "unit") == {"dataflow": "is", "rows": 32,
                                                             "pes": 42}


def test_decoded_values_are_python_types():
    d = small().decode(np.array([0, 0, 0]))
    assert [type(v) for v in d.values()] == [str, int, int]


def test_uniform_unit_gives_uniform_levels():
    sp = small()
    cols = sp.decode_columns(np.random.default_rng(0).random((40_000, 3)), "unit")
    _, counts = np.unique(cols["rows"], return_counts=True)
    assert len(counts) == 4 and np.all(np.abs(counts / 40_000 - 0.25) < 0.01)


def test_floats_in_unit_and_index_encodings():
    sp = mixed()
    d = {"policy": "Closed", "depth": 3, "clock_ghz": 1.25, "vdd": 1.0}
    u = sp.encode(d, "unit")
    np.testing.assert_allclose(u[2:], [0.5, 0.5])  # 1.25 halfway in [0.5, 2]; 1 halfway in log
    back = sp.decode(u, "unit")
    assert back["policy"] == "Closed" and back["depth"] == 3
    assert back["clock_ghz"] == pytest.approx(1.25) and back["vdd"] == pytest.approx(1.0)
    # index: floats snap to the 5-level grid 0.5, 0.875, 1.25, 1.625, 2.0
    assert sp.levels("clock_ghz") == pytest.approx([0.5, 0.875, 1.25, 1.625, 2.0])
    assert sp.decode(sp.encode({**d, "clock_ghz": 1.3}, "index"))["clock_ghz"] == 1.25
    assert sp.levels("vdd") == pytest.approx([0.1, 10 ** -0.5, 1.0, 10 ** 0.5, 10.0])
    oh = sp.encode(d, "onehot")
    assert oh.shape == (2 + 10 + 1 + 1,)
    assert sp.decode(oh, "onehot")["clock_ghz"] == pytest.approx(1.25)


def test_decode_batch_clips_and_rejects_wrong_width():
    sp = small()
    assert sp.decode(np.array([-3, 99, 1.4])) == {"dataflow": "ws", "rows": 32, "pes": 28}
    with pytest.raises(DesignError, match="expected 3 columns"):
        sp.decode_batch(np.zeros((2, 4)))


# ---- sampling, neighbours --------------------------------------------------------------------
def test_sample_is_seeded_valid_and_feasible():
    sp = constrained()
    a = sp.sample(np.random.default_rng(1), 500)
    b = sp.sample(np.random.default_rng(1), 500)
    assert a == b and len(a) == 500
    assert all(sp.is_valid(d) for d in a)
    assert isinstance(sp.sample(3), dict)
    # uniform over the 39 feasible designs: all of them show up
    assert len({tuple(d.values()) for d in a}) == 39
    m = mixed().sample(0, 200)
    assert all(0.1 <= d["vdd"] <= 10 and 0.5 <= d["clock_ghz"] <= 2 for d in m)


def test_sample_impossible_constraints_raise():
    sp = DesignSpace([Integer("x", 0, 3)], ["x > 10"])
    with pytest.raises(DesignError, match="loosen"):
        sp.sample(0, 5, max_tries=3)


def test_neighbours_by_hand():
    sp = small()
    nb = sp.neighbours({"dataflow": "ws", "rows": 4, "pes": 28})
    # dataflow: os, is; rows: 8 (no 2); pes: 14, 42  -> 5 neighbours
    assert len(nb) == 5
    assert {"dataflow": "os", "rows": 4, "pes": 28} in nb
    assert {"dataflow": "ws", "rows": 8, "pes": 28} in nb
    assert {"dataflow": "ws", "rows": 4, "pes": 42} in nb
    cn = constrained().neighbours({"ifmap_kb": 8, "filter_kb": 2, "ofmap_kb": 2})
    # ifmap 4 ok; filter 1 ok, 4 -> 14 no; ofmap 1 ok, 4 no  -> 3
    assert len(cn) == 3
    fn = mixed().neighbours({"policy": "Open", "depth": 1, "clock_ghz": 2.0, "vdd": 1.0})
    clocks = sorted(d["clock_ghz"] for d in fn if d["clock_ghz"] != 2.0)
    assert clocks == pytest.approx([1.625])


# ---- Gymnasium ----------------------------------------------------------------------------------
def test_gymnasium_spaces():
    from gymnasium import spaces

    sp = mixed()
    md = sp.multidiscrete_space(seed=0)
    assert isinstance(md, spaces.MultiDiscrete)
    np.testing.assert_array_equal(md.nvec, [2, 10, 5, 5])
    for _ in range(20):
        assert sp.is_valid(sp.decode(md.sample(), "index"))
    box = sp.box_space(seed=0)
    assert box.shape == (4,) and box.low.min() == 0 and box.high.max() == 1
    for _ in range(20):
        assert sp.is_valid(sp.decode(box.sample(), "unit"))
    assert sp.box_space(onehot=True).shape == (sp.onehot_dim,)
    ds = sp.dict_space(seed=0)
    assert isinstance(ds, spaces.Dict)
    assert isinstance(ds["policy"], spaces.Discrete) and isinstance(ds["vdd"], spaces.Box)
    for _ in range(20):
        assert sp.is_valid(sp.from_gym_dict(ds.sample()))
    d = {"policy": "Closed", "depth": 7, "clock_ghz": 1.5, "vdd": 2.0}
    g = sp.to_gym_dict(d)
    assert ds.contains(g)
    back = sp.from_gym_dict(g)
    assert back["policy"] == "Closed" and back["depth"] == 7
    assert back["clock_ghz"] == pytest.approx(1.5)


# ---- Optuna / Ray Tune / BoTorch --------------------------------------------------------------
def test_optuna_distributions_and_a_small_study():
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sp = DesignSpace([Categorical("policy", ("Open", "Closed")), PowerOfTwo("buf", 1, 128),
                      Integer("pes", 14, 336, step=14), Float("clk", 0.1, 10.0, log=True)])
    dist = sp.optuna_distributions()
    assert isinstance(dist["policy"], CategoricalDistribution)
    assert dist["buf"].choices == (1, 2, 4, 8, 16, 32, 64, 128)
    assert isinstance(dist["pes"], IntDistribution) and dist["pes"].step == 14
    assert isinstance(dist["clk"], FloatDistribution) and dist["clk"].log

    seen = []

    def objective(trial):
        d = sp.suggest(trial)
        sp.validate(d)
        seen.append(d)
        return d["pes"] * d["buf"] / d["clk"]

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=5)
    assert len(seen) == 5 and len(study.trials) == 5
    assert set(study.best_params) == set(sp.names)
    sp.validate(study.best_params)
    # a known design can be enqueued with the same distributions
    study.add_trial(optuna.trial.create_trial(
        params={"policy": "Open", "buf": 4, "pes": 28, "clk": 1.0}, distributions=dist, value=1.0))


def test_ray_tune_space_types_and_samples():
    from ray import tune
    from ray.tune.search.sample import Categorical as TCat
    from ray.tune.search.sample import Float as TFloat
    from ray.tune.search.sample import Integer as TInt

    sp = DesignSpace([Categorical("policy", ("Open", "Closed")), PowerOfTwo("buf", 1, 128),
                      Integer("depth", 1, 8), Integer("pes", 14, 336, step=14),
                      Integer("odd", 1, 9, step=2), Float("clk", 0.5, 2.0),
                      Float("vdd", 0.1, 10.0, log=True)])
    ts = sp.tune_space()
    assert isinstance(ts["policy"], TCat) and isinstance(ts["buf"], TCat)
    assert isinstance(ts["depth"], TInt) and isinstance(ts["pes"], TInt)
    assert isinstance(ts["odd"], TCat)  # 1, 3, 5, ...: not multiples of the step
    assert isinstance(ts["clk"], TFloat) and isinstance(ts["vdd"], TFloat)
    assert tune.choice([1]).__class__ is TCat
    rs = np.random.RandomState(0)
    samples = {k: np.asarray(v.sample(size=400, random_state=rs)) for k, v in ts.items()}
    designs = [{k: samples[k][i].item() for k in sp.names} for i in range(400)]
    for d in designs:
        sp.validate(d)
    # bounds are reached: randint's exclusive upper bound was handled
    assert set(samples["depth"].tolist()) == set(range(1, 9))
    assert {14, 336} <= set(samples["pes"].tolist())


def test_botorch_bounds():
    import torch

    sp = mixed()
    bt = sp.botorch_bounds()
    assert bt.bounds.shape == (2, 4) and bt.bounds.dtype == torch.double
    torch.testing.assert_close(bt.bounds, torch.tensor([[0, 0, 0, 0], [1, 9, 1, 1.0]],
                                                       dtype=torch.double))
    assert bt.categorical_dims == [0] and bt.integer_dims == [1]
    assert bt.cat_dims[0] == [0.0, 1.0] and bt.discrete_dims[1] == [float(i) for i in range(10)]
    # random points in the bounds decode to valid designs; ordinal round trip
    X = bt.bounds[0] + (bt.bounds[1] - bt.bounds[0]) * torch.rand(50, 4, dtype=torch.double)
    for d in sp.decode_batch(X.numpy(), "ordinal"):
        sp.validate(d)
    d = {"policy": "Closed", "depth": 4, "clock_ghz": 0.8, "vdd": 3.0}
    back = sp.decode(sp.encode(d, "ordinal"), "ordinal")
    assert back["depth"] == 4 and back["vdd"] == pytest.approx(3.0)


# ---- JSON ----------------------------------------------------------------------------------------
def test_json_round_trip():
    for sp in (small(), constrained(), mixed()):
        blob = json.dumps(sp.to_dict())
        again = DesignSpace.from_dict(json.loads(blob))
        assert again == sp
        assert again.size(5) == sp.size(5)
    assert constrained().to_dict()["constraints"][0]["message"] == "buffers exceed 12 KB"
    cs = DesignSpace([Integer("x", 0, 3)], [Constraint(lambda d: d["x"] < 2)])
    with pytest.raises(DesignError, match="callable"):
        cs.to_dict()


def test_dram_gym_space_declares_in_one_place():
    """ArchGym DRAMGym's 10 knobs, as the DRAM env will declare them."""
    sp = DesignSpace([
        Categorical("PagePolicy", ("Open", "OpenAdaptive", "Closed", "ClosedAdaptive")),
        Categorical("Scheduler", ("Fifo", "FrFcfs", "FrFcfsGrp")),
        Categorical("SchedulerBuffer", ("Bankwise", "ReadWrite", "Shared")),
        PowerOfTwo("RequestBufferSize", 1, 128),
        Categorical("RespQueue", ("Fifo", "Reorder")),
        Categorical("RefreshPolicy", ("NoRefresh", "AllBank", "PerBank")),
        Integer("RefreshMaxPostponed", 1, 8), Integer("RefreshMaxPulledin", 1, 8),
        Categorical("Arbiter", ("Simple", "Fifo", "Reorder")),
        PowerOfTwo("MaxActiveTransactions", 1, 128),
    ])
    assert sp.size() == 4 * 3 * 3 * 8 * 2 * 3 * 8 * 8 * 3 * 8 == 2_654_208
    d = sp.sample(0)
    assert sp.decode(sp.encode(d, "onehot"), "onehot") == d
    assert sp.multidiscrete_space().nvec.tolist() == [4, 3, 3, 8, 2, 3, 8, 8, 3, 8]
