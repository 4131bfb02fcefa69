#!/usr/bin/env bash
# The GPU measurements of docs/usage.md's "Will it fit my card?" in one device call: the Wan 2.1 1.3B DiT (random
# weights, the published config) trained at 480x832, 33 and 81 frames, bf16 with gradient checkpointing, every
# Wan cost method, then at 81 frames with the frozen base stored in float8; each report sets the measured peak
# beside what `motionsep inspect` predicts (the issue's goal: within 15%).
#
# The device image has torch, transformers, peft, accelerate, safetensors and OpenCV but not diffusers. PyAV's
# 37 MB wheel would not fit the 64 MiB a call carries with the tree: no video is read or written here (motionsep
# imports PyAV only where it does).
#   here, once:   tools/device-cost.sh fetch        (wheels into .whl/, which git ignores through .git/info/exclude)
#   there:        run(command="tools/device-cost.sh measure", carry=[".whl"], timeout_s=560)
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(diffusers==0.42.1 peft==0.21.2)

case "${1:-}" in
fetch)
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
  du -sh .whl
  ;;
measure)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
  out=${OUT:-device-out}
  mkdir -p "$out"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
  bench() {  # a name, then bench cost's flags
    local name=$1
    shift
    timeout 240 python3 -m motionsep bench cost --model wan-1.3b --cuda --dtype bfloat16 --wan-size 480 832 \
      --no-progress --out "$out/$name" "$@" 2>&1 | tee "$out/$name.log" || echo "$name: stopped ($?)"
  }
  bench wan-1.3b-480x832x33 --wan-frames 33
  bench wan-1.3b-480x832x81 --wan-frames 81
  bench wan-1.3b-480x832x81-fp8 --wan-frames 81 --fp8-base
  for f in 33 81; do
    python3 -m motionsep inspect --model wan-1.3b-config --method tap --frames "$f" --size 480 832 \
      --precision bf16 --gradient-checkpointing --fp8-base | tee "$out/inspect-$f.txt"
  done
  ;;
*)
  echo "usage: tools/device-cost.sh fetch|measure" >&2
  exit 2
  ;;
esac
