"""``mlsysgym info [--json] [--target-cpu CPU]``: the target fingerprint of this machine."""

from __future__ import annotations

import argparse
from typing import Any

from mlsysgym.commands.common import add_json, print_json


def register(group: Any) -> None:
    """Add the top-level ``info`` command."""
    p = group("").add_parser("info", help="this machine's target fingerprint (CPU, ISA, caches, "
                             "versions) as recorded in every result")
    add_json(p, "the full fingerprint as JSON")
    p.add_argument("--target-cpu", default="host",
                   help="codegen target (--iree-llvmcpu-target-cpu): host, x86-64-v3, ...")
    p.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    """Print the fingerprint."""
    from mlsysgym.core.target import fingerprint

    fp = fingerprint(args.target_cpu)
    if args.json:
        print_json(args, fp, indent=1)
        return 0
    m, t, s = fp["machine"], fp["target"], fp["software"]
    print(f"target id   {fp['target_id']}")
    print(f"cpu         {m['vendor']} {m['model_name']} (family {m['family']}, model "
          f"{m['model']}, stepping {m['stepping']}), {m['cores']} usable cores")
    print(f"isa         {m['isa_level']}: {' '.join(m['features'])}")
    print(f"caches      L1d {m['l1d_kib']} KiB, L2 {m['l2_kib']} KiB, L3 {m['l3_kib']} KiB")
    print(f"codegen     --iree-llvmcpu-target-cpu={t['cpu']} -> {t['level']}, "
          f"{t['vector_bits']}-bit vectors")
    print("software    " + ", ".join(f"{k} {v}" for k, v in s.items() if v))
    return 0
