#!/usr/bin/env bash
# The GPU check: builds evozero with CUDA, runs the GPU tests (CUDA envs bit-exact with the
# CPU envs, >= 1e5 env-steps per game) and the GPU benchmarks (throughput; ppo.evz on
# breakout at 1M steps, 8 GPU seeds against 8 CPU seeds), and prints one table.
#
#   bash benchmarks/gpu/check.sh WHEELS
#
# WHEELS: a folder of wheels to install from, with no package index: this project's
# dependencies (numpy, gymnasium, ...), pytest and pytest-benchmark, the build
# dependencies (setuptools, wheel, pybind11) and, unless nvcc is on PATH,
# nvidia-cuda-nvcc, nvidia-cuda-runtime and nvidia-cuda-crt. Fill it on a machine with
# an index (same Python version and platform):
#   pip download -d WHEELS numpy gymnasium sympy networkx typer rich matplotlib \
#     pytest pytest-benchmark setuptools wheel pybind11 \
#     nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-crt
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: bash benchmarks/gpu/check.sh WHEELS (a folder of wheels; see the header)" >&2
  exit 2
fi
wheels=$(cd "$1" && pwd)
cd "$(dirname "$0")/../.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: nvidia-smi finds none; run this on a machine with an NVIDIA GPU" >&2
  exit 1
fi
nvidia-smi -L

venv=$(mktemp -d)/venv
python3 -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
pip=(python -m pip install -q --no-index --find-links "$wheels")
# The license field of pyproject.toml needs setuptools >= 77 (a venv may bring an older one).
"${pip[@]}" -U "setuptools>=77" wheel "pybind11>=2.12"
if ! command -v nvcc >/dev/null 2>&1; then
  "${pip[@]}" nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-crt
fi
"${pip[@]}" pytest pytest-benchmark
echo "+ EVOZERO_CUDA=1 pip install ."
EVOZERO_CUDA=1 "${pip[@]}" --no-build-isolation .

out=$(mktemp -d)
status=0
echo "+ GPU tests"
python -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py || status=1
echo "+ GPU benchmarks"
EVOZERO_BENCH_OUT="$out/figures.json" python -m pytest -q -p no:cacheprovider \
  --benchmark-enable benchmarks/gpu || status=1

python - "$out/figures.json" <<'PY'
import json
import sys
from pathlib import Path

path = Path(sys.argv[1])
if not path.exists():
    sys.exit("no GPU figures were measured (see the skips above)")
figures = json.loads(path.read_text())
table = figures["GPU env steps/s (median)"]
print("\n| game | GPU env steps/s | CPU (one core) env steps/s | GPU / CPU |")
print("|---|---|---|---|")
for game, row in table.items():
    gpu, cpu = row.get("GPU"), row.get("CPU, one core")
    ratio = f"{gpu / cpu:,.0f}x" if gpu and cpu else ""
    print(f"| {game} | {gpu or 0:,.3g} | {cpu or 0:,.3g} | {ratio} |")
for row, cols in figures.get("train_many env steps/s (aggregate)", {}).items():
    print(f"\n| train_many: {row} | " + " | ".join(f"{k}: {v:,.3g}" for k, v in cols.items()) + " |")
agreement = figures.get("ppo.evz on breakout at 1M steps: final return over 8 seeds", {})
if agreement:
    gpu, cpu = agreement.get("GPU, seeds 0-7", {}), agreement.get("CPU, seeds 0-7", {})
    verdict = agreement.get("GPU mean within the CPU spread", {}).get("1 = yes")
    print(
        f"\n| ppo.evz, breakout, 1M steps, final return | GPU mean {gpu.get('mean', 0):.3g} "
        f"(min {gpu.get('min', 0):.3g}, max {gpu.get('max', 0):.3g}) | CPU min "
        f"{cpu.get('min', 0):.3g}, mean {cpu.get('mean', 0):.3g}, max {cpu.get('max', 0):.3g} | "
        f"GPU mean within the CPU spread: {'yes' if verdict else 'NO'} |"
    )
PY
exit "$status"
