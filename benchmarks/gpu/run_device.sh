#!/usr/bin/env bash
# The one device run (issue #26): measure for ~390 s, write rows + fingerprint + log under $OUT.
#   run(command="bash benchmarks/gpu/run_device.sh", timeout_s=480)
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv 2>&1
  python3 - <<'PY'
import importlib
for m in ("torch", "numpy", "pyarrow", "pynvml", "triton", "pandas"):
    try:
        mod = importlib.import_module(m); print(m, getattr(mod, "__version__", "?"))
    except Exception as e:
        print(m, "MISSING", e)
PY
  if [ -n "${RESUME_FROM:-}" ]; then cp "$RESUME_FROM" "$OUT/gpu_kernels.parquet"; fi
  timeout "${TIMEOUT_S:-450}" python3 benchmarks/gpu/measure_kernels.py \
      --out "$OUT/gpu_kernels.parquet" --budget-s "${BUDGET_S:-390}" --energy-ms 200
  echo "exit $?"
} 2>&1 | tee "$OUT/measure.log" | grep -v '^failed ' | tail -c 9000
grep -c '^failed ' "$OUT/measure.log"; grep '^failed ' "$OUT/measure.log" | cut -c1-300 | sort | uniq | head -20
ls -la "$OUT"
