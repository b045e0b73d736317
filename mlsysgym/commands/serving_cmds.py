"""``mlsysgym sim serving``: simulate serving an LLM with one plan on a cluster and a trace."""

from __future__ import annotations

import argparse
from typing import Any

from mlsysgym.commands.common import add_json, add_workload, print_json, slow_step


def register(group) -> None:
    p = group("sim").add_parser(
        "serving", help="LLM serving: TTFT, TPOT, throughput, SLOs, energy of a plan",
        description="Simulate continuous-batching LLM serving (vLLM-like) of one plan: "
                    "data/tensor/pipeline/expert parallelism, dtypes, batching limits.")
    add_workload(p, "built-in LLM name (e.g. Llama-3.1-70B) or a config.json path",
                 metavar="MODEL_OR_CONFIG")
    p.add_argument("--gpu", default="H100-SXM", help="device name (e.g. H100-SXM, A100-80GB)")
    p.add_argument("--cluster", default=None, metavar="YAML",
                   help="cluster file (device, nodes, per_node); replaces --gpu/--n-gpus/--nodes")
    p.add_argument("--n-gpus", type=int, default=None, help="devices in all (default tp·pp·dp·…)")
    p.add_argument("--nodes", type=int, default=1, help="nodes the devices are spread over")
    for k, h in (("tp", "tensor parallel"), ("pp", "pipeline stages"), ("dp", "replicas"),
                 ("ep", "expert parallel (1 or dp·tp)")):
        p.add_argument(f"--{k}", type=int, default=1, help=h)
    p.add_argument("--pd-disagg", action="store_true",
                   help="split every replica into a prefill and a decode instance")
    p.add_argument("--dtype", default="bf16", help="weights: bf16, fp8, int8, int4")
    p.add_argument("--kv-dtype", default="bf16", help="KV cache: bf16, fp8")
    p.add_argument("--max-num-seqs", type=int, default=256, help="sequences batched at once")
    p.add_argument("--max-batched-tokens", type=int, default=2048, help="tokens per batch step")
    p.add_argument("--no-chunked-prefill", action="store_true",
                   help="prefill a prompt in one step, not in chunks")
    p.add_argument("--gpu-mem-util", type=float, default=0.9,
                   help="share of device memory for weights and KV cache")
    p.add_argument("--trace", default=None, metavar="JSONL", help="request trace (JSON lines)")
    p.add_argument("--rate", type=float, default=2.0, help="Poisson arrivals, requests/s")
    p.add_argument("--input-len", type=int, default=None,
                   help="fixed prompt length (default: the --workload distribution)")
    p.add_argument("--output-len", type=int, default=None, help="fixed output length")
    p.add_argument("--workload", dest="request_mix", default="chat",
                   help="request length distribution: chat, conversation, code, summarization")
    p.add_argument("-n", "--requests", type=int, default=200, help="requests in the trace")
    p.add_argument("--seed", type=int, default=0, help="random seed of the trace")
    p.add_argument("--slo-ttft", type=float, default=1.0, metavar="S",
                   help="time-to-first-token SLO (s)")
    p.add_argument("--slo-tpot", type=float, default=0.1, metavar="S",
                   help="time-per-output-token SLO (s)")
    p.add_argument("--engine", default=None, metavar="PRESET",
                   help="engine-overhead preset (front end, tokenization, per-step CPU, P/D "
                        "hand-off): vllm-v1-client (default), vllm-v0.6-server, "
                        "vllm-v0.6-client, none")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlsysgym.simulators.serving.evaluator import ServingWorkload, simulate
    from mlsysgym.simulators.serving.plans import Plan, PlanError
    from mlsysgym.simulators.serving.traces import fixed_trace

    plan = Plan(tp=args.tp, pp=args.pp, dp=args.dp, ep=args.ep, pd_disagg=int(args.pd_disagg),
                dtype=args.dtype, kv_dtype=args.kv_dtype, max_num_seqs=args.max_num_seqs,
                max_batched_tokens=args.max_batched_tokens,
                chunked_prefill=not args.no_chunked_prefill, gpu_mem_util=args.gpu_mem_util)
    trace: Any = args.trace
    if trace is None and (args.input_len or args.output_len):
        if not (args.input_len and args.output_len):
            raise PlanError("give both --input-len and --output-len (or neither)")
        trace = fixed_trace(args.rate, args.requests, args.input_len, args.output_len, args.seed)
    n = args.n_gpus or plan.n_devices
    w = ServingWorkload.make(args.workload, args.gpu, n, args.nodes, trace, args.rate,
                             args.requests, args.request_mix, args.seed, args.slo_ttft,
                             args.slo_tpot, cluster=args.cluster, engine=args.engine)
    with slow_step(f"simulating {len(w.trace)} requests"):
        metrics = simulate(w, plan)
    doc = {"model": w.model.name, "device": w.cluster.device.name,
           "devices": w.cluster.n_devices, "nodes": w.cluster.nodes, "trace": w.trace.name,
           "requests": len(w.trace), "plan": plan.as_design(), "metrics": metrics}
    if args.json:
        print_json(args, doc, indent=2)
        return 0
    print(f"{doc['model']} on {doc['devices']} x {doc['device']} ({doc['nodes']} node(s)), "
          f"plan dp{plan.dp}·tp{plan.tp}·pp{plan.pp}" + (f"·ep{plan.ep}" if plan.ep > 1 else "")
          + (" P/D split" if plan.pd_disagg else "") + f", {plan.dtype}/{plan.kv_dtype}, "
          f"{len(w.trace)} requests ({w.trace.name})")
    m = metrics
    rows = [("TTFT mean / p50 / p95 / p99 (ms)",
             [m["ttft_mean_s"], m["ttft_p50_s"], m["ttft_p95_s"], m["ttft_p99_s"]], 1e3),
            ("TPOT mean / p50 / p95 / p99 (ms)",
             [m["tpot_mean_s"], m["tpot_p50_s"], m["tpot_p95_s"], m["tpot_p99_s"]], 1e3),
            ("end-to-end mean / p99 (s)", [m["e2e_mean_s"], m["e2e_p99_s"]], 1.0)]
    for label, vals, scale in rows:
        print(f"  {label:34s} " + " / ".join(f"{v * scale:.2f}" for v in vals))
    print(f"  {'throughput':34s} {m['throughput_tok_s']:.1f} tok/s, "
          f"{m['throughput_req_s']:.3f} req/s")
    print(f"  {'SLO attainment':34s} {m['slo_attainment']:.1%} (TTFT <= {args.slo_ttft:g} s, "
          f"TPOT <= {args.slo_tpot:g} s)")
    print(f"  {'energy':34s} {m['energy_per_token_j']:.3f} J/token ({m['energy_j'] / 3.6e6:.3f} kWh)")
    print(f"  {'memory per device':34s} weights {m['weights_gb_per_device']:.1f} GB, KV cache "
          f"{m['kv_tokens_per_instance']:.0f} tokens per instance, "
          f"{m['preemptions']:.0f} preemptions")
    return 0
