#!/usr/bin/env python3
"""Turn the device run's raw Parquet into the committed dataset (benchmarks/data/gpu/).

    .venv/bin/python benchmarks/gpu/prepare_dataset.py RAW.parquet benchmarks/data/gpu/h200_kernels.parquet

- drops the ``bmm``/``fp8`` rows of the first run: the script then built fp8 batched products
  with fp32 tensors (no ``_scaled_mm`` path for bmm), so their label was wrong; the design no
  longer has them;
- adds ``run`` (1: first device command, 2: the resumed one), ``duty_cycle`` (median kernel
  runtime ÷ wall time per call inside the energy window: the share of the window the GPU was
  busy) and ``power_ok`` (1 where power is the kernel's power: run 1's back-to-back windows;
  run 2's edge-aligned windows left the GPU idle ~60 % of the window while the host read NVML,
  so their ``power_w`` is an average over a duty cycle, kept but not a kernel's power).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd


def prepare(raw: pd.DataFrame) -> pd.DataFrame:
    df = raw[~((raw.op == "bmm") & (raw.dtype == "fp8"))].copy()
    df["run"] = (df["energy_method"] == "nvml_energy_edges").astype(int) + 1
    df.loc[df["run"] == 1, "energy_method"] = "nvml_energy"
    df["duty_cycle"] = df["runtime_us"] / df["window_runtime_us"]
    df["power_ok"] = (df["run"] == 1).astype(int)
    return df.reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", help="the device run's raw Parquet")
    parser.add_argument("out", help="the prepared Parquet to write")
    args = parser.parse_args(argv)
    out = prepare(pd.read_parquet(args.raw))
    out.to_parquet(args.out, compression="zstd", index=False)
    print(len(out), "rows ->", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
