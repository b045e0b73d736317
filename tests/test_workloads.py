"""Workload splits (mlsysgym.ir.workloads) and generated graphs (mlsysgym.ir.generators)."""

from __future__ import annotations

import json

import pytest
from mlsysgym.ir import generators, workloads, zoo
from mlsysgym.ir.errors import WorkloadError, WorkloadNotFoundError
from mlsysgym.ir.workloads import UnknownSplitError

from mlsysgym.cli import main

# The digest of split version "2": a change to any split entry must bump SPLITS_VERSION (and
# then this constant), so that results recorded against a version stay comparable. (Version 1,
# digest d27896d70f28, had no generated EfficientNets in validation; train and test are as in 1.)
DIGEST_V2 = "456caf4d5884"


def test_splits_are_versioned_and_their_content_is_pinned():
    assert workloads.SPLITS_VERSION == "2"
    assert workloads.splits_digest() == DIGEST_V2


def test_splits_are_disjoint_by_family_and_the_test_families_are_unseen():
    families = {s: {w.family for w in workloads.split(s)} for s in workloads.SPLITS}
    assert families["train"].isdisjoint(families["validation"])
    assert families["train"].isdisjoint(families["test"])
    assert families["validation"].isdisjoint(families["test"])
    assert families["test"] == set(workloads.TEST_FAMILIES)
    names = workloads.workload_names()
    assert len(names) == len(set(names))
    # every zoo model is in exactly one split, by its family
    assert {w.params["model"] for w in workloads.split("train") + workloads.split("validation")
            + workloads.split("test") if w.source == "zoo"} == set(zoo.names())
    assert workloads.workload("tinyllama_1b").split == "test"
    assert workloads.workload("bert_l12_d768_s384_b1").split == "train"


def test_validation_is_half_vision_cnns_of_a_searchable_size():
    from mlsysgym.simulators.memory import build_instance

    val = workloads.split("validation")
    assert [w.family for w in val].count("efficientnet") == len(val) // 2 == 4
    # the generated EfficientNets (efficientnet_b0: 404 buffers) have 300–900 mallocGame buffers
    sizes = {w.name: build_instance(w.build(), capacity_fraction=0.13).n_buffers
             for w in val if w.generator == "mbconv_stages"}
    assert sizes == {"mbconv_w16x7_1223341_i192_b2": 404, "mbconv_w12x7_1122231_i256_b1": 304,
                     "mbconv_w16x7_2334452_i224_b1": 574}


def test_generated_graphs_are_deterministic_and_seeded():
    a = generators.random_layered_dag(n_ops=80, seed=3)
    b = generators.random_layered_dag(n_ops=80, seed=3)
    c = generators.random_layered_dag(n_ops=80, seed=4)
    assert len(a.ops) == 80
    assert [(o.op_type, o.flops, o.inputs) for o in a.ops] == [(o.op_type, o.flops, o.inputs) for o in b.ops]
    assert [o.op_type for o in a.ops] != [o.op_type for o in c.ops]
    # every op reads only graph inputs, weights or tensors written before it
    written = set(a.inputs) | {t.name for t in a.weights()}
    for op in a.ops:
        assert set(op.inputs) <= written
        written.update(op.outputs)


def test_transformer_block_flops_by_hand():
    # B=1, S=4, d=8, H=2, d_ff=16, one layer:
    # projections 2BS(4d² + 2·d·f) = 8·(256 + 256) = 4096; attention 4BS²d = 512;
    # biases BS(5d + f) = 4·56 = 224; residuals 2BSd = 64; score scale BHS² = 32;
    # Softmax 4BHS² = 128; GELU 8BSf = 512; two LayerNorms 16BSd = 512 → 6080
    g = generators.transformer_encoder(layers=1, d_model=8, heads=2, d_ff=16, seq=4, batch=1)
    assert g.totals().flops == 6080
    assert len(g.ops) == 29
    assert g.totals().estimated_ops == 0


def test_generated_resnet_matches_the_zoo_resnet18():
    gen, ref = generators.resnet_stages().totals(), zoo.load("resnet18").totals()
    assert (gen.macs, gen.flops, gen.params) == (ref.macs, ref.flops, ref.params) == \
        (1_814_073_344, 3_635_523_560, 11_684_712)


def test_generated_efficientnet_matches_the_zoo_efficientnet_b0():
    # same ops, MACs, FLOPs, parameters and working set (the zoo export's head AveragePool, a
    # 1280×1280 kernel over a 7×7 input, costs its 7×7 window as the generated GlobalAveragePool)
    gen, ref = generators.mbconv_stages().totals(), zoo.load("efficientnet_b0").totals()
    assert (gen.ops, gen.macs, gen.flops, gen.params, gen.peak_live_bytes) == \
        (ref.ops, ref.macs, ref.flops, ref.params, ref.peak_live_bytes) == \
        (239, 385_814_752, 807_921_972, 5_267_540, 14_450_688)


def test_mbconv_flops_by_hand():
    # image 32 → stem 3×3/2 conv to 32 ch at 16×16; stage 0: one block 32 → 8 (expand 1, no
    # residual: 32 ≠ 8); stage 1: blocks 8 → 16 (stride 2, to 8×8) and 16 → 16 (residual).
    # A conv costs 2·MACs + its outputs (bias); SiLU 4 per element (Sigmoid 3 + Mul 1); pools 1
    # per input element; SE gate Sigmoid 3 + Mul 1 per element.
    g = generators.mbconv_stages(widths=(8, 16), blocks=(1, 2), expand=(1, 4), kernels=(3, 3),
                                 strides=(1, 2), image=32, classes=10)
    ops = {op.name: op for op in g.ops}
    # s1b0's depthwise conv: 32 ch, 3×3, stride 2 to 8×8: 32·64·9 = 18,432 MACs
    assert (ops["s1b0_dw"].macs, ops["s1b0_dw"].flops) == (18_432, 2 * 18_432 + 32 * 64)
    stem = 2 * 32 * 256 * 27 + 8192 + 4 * 8192                           # 483,328
    s0b0 = (2 * 32 * 256 * 9 + 8192) + 4 * 8192 + 8192 \
        + (2 * 256 + 8) + 4 * 8 + (2 * 256 + 32) + 3 * 32 + 8192 \
        + (2 * 8 * 256 * 32 + 2048)                                        # dw, SE via 8 ch, project
    s1b0 = (2 * 32 * 256 * 8 + 8192) + 4 * 8192 + (2 * 18_432 + 2048) + 4 * 2048 + 2048 \
        + (2 * 64 + 2) + 4 * 2 + (2 * 64 + 32) + 3 * 32 + 2048 \
        + (2 * 16 * 64 * 32 + 1024)                                        # expand to 32, SE via 2
    s1b1 = (2 * 64 * 64 * 16 + 4096) + 4 * 4096 + (2 * 64 * 64 * 9 + 4096) + 4 * 4096 + 4096 \
        + (2 * 256 + 4) + 4 * 4 + (2 * 256 + 64) + 3 * 64 + 4096 \
        + (2 * 16 * 64 * 64 + 1024) + 1024                                 # expand to 64, SE via 4, Add
    head = (2 * 1280 * 64 * 16 + 81920) + 4 * 81920 + 81920 + (2 * 1280 * 10 + 10)
    assert (stem, s0b0, s1b0, s1b1, head) == (483_328, 339_112, 290_186, 388_372, 3_138_570)
    assert g.totals().flops == stem + s0b0 + s1b0 + s1b1 + head == 4_639_568
    assert g.totals().estimated_ops == 0
    # a residual only where the stride is 1 and the channels match
    assert [op.name for op in g.ops if op.op_type == "Add"] == ["s1b1_add"]
    with pytest.raises(WorkloadError, match="must have the same length"):
        generators.mbconv_stages(widths=(8, 16), blocks=(1, 2), expand=(1,))
    with pytest.raises(WorkloadError, match=r"widths\[0\] must be a positive integer"):
        generators.mbconv_stages(widths=(0,), blocks=(1,), expand=(1,), kernels=(3,), strides=(1,))
    with pytest.raises(WorkloadError, match="se_ratio"):
        generators.mbconv_stages(se_ratio=0)


def test_big_test_instance_has_over_1000_buffers():
    from mlsysgym.simulators.memory import build_instance

    graph = workloads.workload("llama_l22_d2048_s512_b1").build()
    inst = build_instance(graph, capacity_fraction=0.1)
    # 22 layers × (39 activations + 9 weights) + 3 inputs + 1 final norm weight + its output
    assert inst.n_buffers >= 1000


def test_instance_specs_name_and_build_problems():
    m = workloads.malloc_instances("test")
    assert len(m) == len(workloads.split("test")) * len(workloads.MALLOC_CAPACITIES)
    spec = m[0].problem_spec()
    graph = workloads.workload("convnext_tiny").build()
    assert m[0].name == "convnext_tiny:0.25"
    assert spec["name"] == "malloc" and spec["model"] is graph
    assert spec["capacity_bytes"] == int(0.25 * graph.peak_live_memory())
    s = workloads.scheduling_instances("validation", platforms=("soc_npu",))
    assert [i.name for i in s][:2] == ["efficientnet_b0@soc_npu", "gpt2@soc_npu"]
    for inst in m:  # a name gives its instance back
        assert workloads.MallocInstanceSpec.from_name(inst.name) == inst


def test_bad_names_and_arguments_are_one_line_errors():
    with pytest.raises(UnknownSplitError, match="choose train, validation or test"):
        workloads.split("holdout")
    with pytest.raises(WorkloadNotFoundError, match="no split workload"):
        workloads.workload("nope")
    for bad in ("gpt2", "gpt2:zero", "gpt2:-1", "gpt2:0.5@nowhere"):
        with pytest.raises(WorkloadNotFoundError, match="not a mallocGame instance"):
            workloads.MallocInstanceSpec.from_name(bad)
    with pytest.raises(WorkloadError, match="multiple of heads"):
        generators.transformer_encoder(d_model=10, heads=3)
    with pytest.raises(WorkloadError, match="positive integer"):
        generators.random_layered_dag(n_ops=0)


def test_cli_lists_a_split(capsys):
    assert main(["list", "workloads", "--split", "test", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["family"] for r in rows} == set(workloads.TEST_FAMILIES)
    assert all(r["split"] == "test" for r in rows)
    assert main(["list", "workloads", "--split", "train"]) == 0
    assert "resnet18 (resnet)" in capsys.readouterr().out.splitlines()


def _recorded_gaps(section: str) -> dict[str, float]:
    """instance → gap_pct of one table of benchmarks/results/instance_headroom.md."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "benchmarks" / "results"
            / "instance_headroom.md").read_text()
    table = text.split(section, 1)[1].split("\n## ", 1)[0]
    rows = [ln.strip("|").split("|") for ln in table.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in rows[0]]
    i, g = header.index("instance"), header.index("gap_pct")
    return {r[i].strip(): float(r[g]) for r in rows[1:]}


def test_headroom_instances_are_those_the_benchmark_measured_with_a_gap():
    gaps = _recorded_gaps("## mallocGame")
    assert set(gaps) == {i.name for i in workloads.malloc_instances("test")}
    assert workloads.HEADROOM_MALLOC == {name for name, gap in gaps.items() if gap >= 1.0}
    chosen = workloads.malloc_instances("test", headroom=True)
    assert [i.name for i in chosen] == [n for n in gaps if n in workloads.HEADROOM_MALLOC]
    sched = _recorded_gaps("## Scheduling")
    assert workloads.HEADROOM_SCHEDULING == {name for name, gap in sched.items() if gap >= 1.0}


def test_each_fresh_test_set_is_the_test_workloads_at_capacities_no_earlier_set_used():
    used = {i.name for i in workloads.malloc_instances("test")}
    sizes = {"fresh": 24, "fresh2": 32, "fresh3": 32, "fresh4": 32,
             "fresh5": 32, "fresh6": 32, "fresh7": 32,
             "fresh8": 32, "fresh9": 32, "fresh10": 32,
             "fresh11": 32, "fresh12": 32}  # 8 test workloads x 3 or 4 capacities
    for name, caps in workloads.TEST_CAPACITY_SETS.items():
        fresh = [i.name for i in workloads.malloc_instances("test", caps)]
        assert len(fresh) == len(caps) * len(workloads.split("test")) == sizes[name]
        assert not used & set(fresh)
        assert {workloads.MallocInstanceSpec.from_name(n).workload.family for n in fresh} == set(
            workloads.TEST_FAMILIES)
        used |= set(fresh)


def test_random_dags_get_a_wider_scheduling_window():
    inst = {i.workload.family: i for i in workloads.scheduling_instances("train")}
    assert inst["random_dag"].problem_spec()["window"] == 64
    assert inst["bert"].problem_spec()["window"] == 16


@pytest.mark.parametrize("generated, zoo_name", [
    (generators.transformer_encoder, "bert_base"),   # BERT-base, sequence 128
    (generators.gpt_decoder, "gpt2"),                # GPT-2 small, sequence 128
    (generators.llama_decoder, "tinyllama_1b"),      # TinyLlama-1.1B, sequence 128
])
def test_generated_transformers_match_their_zoo_model(generated, zoo_name):
    # the zoo graphs add only FLOP-light embeddings, masks and a pooler: within 0.05 %
    gen, ref = generated().totals().flops, zoo.load(zoo_name).totals().flops
    assert abs(gen - ref) / ref < 5e-4


# ---- multi-tenant scheduling instances (several graphs released together) -----------------------
def test_multi_tenant_sets_are_deterministic_by_split_and_leave_the_splits_alone():
    names = {s: [i.name for i in workloads.scheduling_instances(s, setting="multi")]
             for s in workloads.SPLITS}
    assert names == {s: [i.name for i in workloads.scheduling_instances(s, setting="multi")]
                     for s in workloads.SPLITS}
    assert names["test"][:2] == ["convnext_tiny+convnext_tiny@soc_npu", "convnext_tiny+convnext_tiny@balanced"]
    for s in workloads.SPLITS:
        for mix in workloads.MULTI_TENANT[s]:
            spec = workloads.workload(mix)
            assert spec.source == "concurrent" and spec.split == s
            assert all(workloads.FAMILIES[f] == s for f in spec.family.split("+"))
    train = {f for m in workloads.MULTI_TENANT["train"] for f in workloads.workload(m).family.split("+")}
    test = {f for m in workloads.MULTI_TENANT["test"] for f in workloads.workload(m).family.split("+")}
    assert train.isdisjoint(test)
    assert workloads.splits_digest() == DIGEST_V2  # mixes are not split entries
    assert all(i.window == 64 for i in workloads.scheduling_instances("train", setting="multi"))


def test_a_two_graph_mix_is_the_disjoint_union_of_its_graphs():
    from mlsysgym.agents.problems import make_problem

    # resnet18 has 49 ops and alexnet 24 (zoo graphs): the mix schedules 49 + 24 = 73 ops
    mix = workloads.workload("resnet18+alexnet")
    graph = workloads.resolve("resnet18+alexnet")
    parts = [workloads.resolve("resnet18"), workloads.resolve("alexnet")]
    assert [len(p.ops) for p in parts] == [49, 24]
    assert len(graph.ops) == 73 and graph.metadata["job_sizes"] == [49, 24]
    assert mix.how == "concurrent(resnet18, alexnet)" and mix.family == "resnet+alexnet"
    assert graph.ops[49].name == "j1/" + parts[1].ops[0].name
    assert graph.totals().flops == sum(p.totals().flops for p in parts)
    inst = next(i for i in workloads.scheduling_instances("train", setting="multi",
                                                         platforms=("soc_npu",))
                if i.workload.name == "resnet18+alexnet")
    problem = make_problem(inst.problem_spec())
    sched = problem.instance
    assert sched.n_ops == 73 and problem.window == 64
    singles = [make_problem({"name": "scheduling", "model": p, "platform": "soc_npu"}).instance
               for p in parts]
    assert sched.n_edges == sum(s.n_edges for s in singles)
    # no data edge crosses jobs: every edge stays inside the first 49 ops or the last 24
    assert ((sched.edge_src < 49) == (sched.edge_dst < 49)).all()


def test_bad_mixes_are_one_line_errors():
    with pytest.raises(WorkloadNotFoundError, match="no split workload named 'nope'"):
        workloads.workload("resnet18+nope")
    with pytest.raises(WorkloadError, match="at least 2"):
        workloads.concurrent_workload(["resnet18"])
    with pytest.raises(WorkloadError, match="choose single or multi"):
        workloads.scheduling_instances("test", setting="batch")
    assert workloads.workload("resnet18+gpt2").split == "mixed"


def test_a_mix_on_the_jct_objective_is_a_stream_of_jobs_released_together():
    from mlsysgym.agents.problems import make_problem

    inst = workloads.SchedulingInstanceSpec(workloads.workload("resnet18+alexnet"), "soc_npu", "jct")
    assert inst.name == "resnet18+alexnet@soc_npu:jct"
    problem = make_problem(inst.problem_spec())
    assert problem.objective == "jct" and problem.stream and problem.window == 64
    assert problem.instance.n_jobs == 2 and problem.instance.n_ops == 73
    assert not problem.instance.has_releases  # both jobs arrive at 0
    assert list(problem.instance.job_of).count(0) == 49  # job 0 is resnet18's 49 ops
    with pytest.raises(WorkloadError, match="needs several jobs"):
        workloads.SchedulingInstanceSpec(workloads.workload("resnet18"), "soc_npu", "jct")


def _recorded_multi(section: str, column: str) -> dict[str, float]:
    """instance → ``column`` of one table of benchmarks/results/scheduling_headroom.md."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "benchmarks" / "results"
            / "scheduling_headroom.md").read_text()
    table = text.split(section, 1)[1].split("\n## ", 1)[0]
    rows = [ln.strip("|").split("|") for ln in table.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in rows[0]]
    i, g = header.index("instance"), header.index(column)
    return {r[i].strip(): float(r[g]) for r in rows[1:]}


def test_multi_tenant_headroom_instances_are_those_the_benchmark_measured_with_a_gap():
    makespan = _recorded_multi("## Makespan", "gap_best_heur_pct")
    jct = _recorded_multi("## Mean job completion time", "gap_best_heur_pct")
    assert set(makespan) == {i.name for i in workloads.scheduling_instances("test", setting="multi")}
    assert set(jct) == {i.name for i in workloads.scheduling_instances("test", setting="multi",
                                                                       objective="jct")}
    measured = {n for n, g in {**makespan, **jct}.items() if g >= 2.0}
    assert workloads.HEADROOM_MULTI == measured
    chosen = workloads.scheduling_instances("test", setting="multi", headroom=True)
    assert {i.name for i in chosen} == {n for n in measured if not n.endswith(":jct")}


@pytest.mark.slow
def test_large_test_workloads_are_every_test_graph_and_mix_of_a_thousand_buffers_or_more():
    from mlsysgym.agents.problems import make_problem

    names = [w.name for w in workloads.split("test")] + list(workloads.MULTI_TENANT["test"])
    large = [n for n in names if make_problem(workloads.MallocInstanceSpec.from_name(
        f"{n}:0.2").problem_spec()).instance.n_buffers >= 1000]
    assert tuple(large) == workloads.LARGE_TEST_WORKLOADS
    assert {workloads.workload(n).split for n in large} == {"test"}
