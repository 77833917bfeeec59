#!/usr/bin/env bash
# The figures of a many-core machine with a GPU, in one run of at most 6 minutes:
# bench_scaling (quick) for 1, 4, 8 and cores - 1 workers, with its JSON for the
# docs' plot, then the GPU feed (bench_gpu_feed, quick) with 8 workers.
#
#   bash benchmarks/device_check.sh OUT_DIR
#
# Run from the repository root, with python3 holding numpy and torch (the
# DataLoader columns and the GPU feed need torch). shoal is taken from src/;
# its one other dependency, decorator, is installed from .whl/ when the
# machine lacks it and the wheel was carried there (see benchmarks/README.md).
# Each part has its own time limit, so that one that runs long still leaves
# the other's figures; everything is written under OUT_DIR.
set -uo pipefail
out="${1:?usage: bash benchmarks/device_check.sh OUT_DIR}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! python3 -c "import decorator" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/shoal-site .whl/decorator-*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/shoal-site" \
        || { echo "decorator is missing: carry its wheel in .whl/"; exit 1; }
fi
cores="$(nproc)"
last=$((cores - 1))
workers="1"
for k in 4 8; do [ "$k" -lt "$last" ] && workers="$workers $k"; done
[ "$last" -gt 1 ] && workers="$workers $last"
{
    echo "machine: $cores cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
    python3 -c "import numpy, torch; print('numpy', numpy.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$out/machine.txt"
# shellcheck disable=SC2086
timeout 260 python3 benchmarks/bench_scaling.py --quick --workers $workers \
    --json "$out/scaling.json" 2>&1 | tee "$out/scaling.txt"
echo "bench_scaling: exit $?" | tee -a "$out/scaling.txt"
timeout 80 python3 benchmarks/bench_gpu_feed.py --quick --workers "$((last < 8 ? last : 8))" \
    2>&1 | tee "$out/gpu_feed.txt"
echo "bench_gpu_feed: exit $?" | tee -a "$out/gpu_feed.txt"
