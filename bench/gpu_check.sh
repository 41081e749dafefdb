#!/usr/bin/env bash
# judgetrain on one GPU, offline, in under 8 minutes: FSDP and DDP training (tokens/s, MFU), batched
# judging, a reward judge and CPU = GPU verdicts, then one table (the steps: bench/gpu_check.py).
#
# The GPU machine needs torch (CUDA, bf16), transformers, accelerate and the usual scientific packages
# (numpy, scipy, pyyaml, tqdm, safetensors). The rest of what judgetrain needs comes as wheels kept in
# bench/gpu_wheels (61 MiB), filled once on a machine with network access and the GPU machine's Python:
#
#   bench/gpu_check.sh --download-wheels      # pip download of WHEEL_PINS below (GPU_CHECK_PYTHON_VERSION=3.12 for another Python)
#
# then, on the GPU machine:
#
#   bench/gpu_check.sh                        # installs judgetrain from bench/gpu_wheels, runs every step
#   bench/gpu_check.sh --skip-install --device cpu --small   # the same steps on a CPU with the tiny model
#
# Results, models and logs go to $GPU_CHECK_OUT (default runs/gpu_check). A step that cannot run (no CUDA,
# a missing wheel, FSDP failing, CPU and GPU verdicts differing) stops the check with a non-zero exit and
# names the step.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHECK="$REPO/bench/gpu_check.py"
PYTHON=${PYTHON:-python}
WHEELS=${GPU_CHECK_WHEELS:-$REPO/bench/gpu_wheels}
OUT=${GPU_CHECK_OUT:-$REPO/runs/gpu_check}
# judgetrain's dependencies that the GPU machine lacks: datasets and what it needs beyond the preinstalled
# packages, and the build backend of `pip install -e .` (setuptools, wheel and its packaging). Pinned to the
# versions judgetrain is tested with, except pyarrow: the oldest one datasets 5.2 accepts, whose wheel is
# the smallest (47 of the 61 MiB).
WHEEL_PINS=(datasets==5.2.0 pyarrow==24.0.0 pandas==3.1.1 python-dateutil==2.9.0.post0 six==1.17.0 dill==0.4.1
            multiprocess==0.70.19 xxhash==4.1.0 fsspec==2026.9.0 setuptools==80.10.2 wheel==0.48.0 packaging==26.2)

DEVICE=cuda
SMALL=0
INSTALL=1
while (($#)); do
    case $1 in
        --download-wheels)
            version=${GPU_CHECK_PYTHON_VERSION:-$("$PYTHON" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')}
            "$PYTHON" -m pip download --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
                --python-version "$version" --implementation cp --abi "cp${version/./}" -d "$WHEELS" "${WHEEL_PINS[@]}"
            du -sh "$WHEELS"
            exit 0 ;;
        --skip-install) INSTALL=0 ;;
        --device) DEVICE=${2:?--device needs cuda or cpu}; shift ;;
        --small) SMALL=1 ;;
        *) echo "gpu_check: unknown argument $1 (use --download-wheels, --skip-install, --device cuda|cpu, --small)" >&2; exit 2 ;;
    esac
    shift
done

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
rm -rf "$OUT/results" "$OUT/logs"  # a result left by an earlier run must not reach this run's table
mkdir -p "$OUT/logs"
started=$SECONDS

fail() { echo "gpu_check: FAILED at step '$1': $2" >&2; exit 1; }

# run_step NAME COMMAND...: the command's output goes to OUT/logs/NAME.log; its tail is shown when it fails,
# and the failed step is the one gpu_check.py names (NAME when the command is not gpu_check.py).
run_step() {
    local name=$1 log="$OUT/logs/$1.log" step_started=$SECONDS failed
    shift
    echo "gpu_check: $name ..." >&2
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        failed=$(grep -o 'gpu_check: step [a-z0-9-]* failed' "$log" | tail -n 1 | cut -d' ' -f3)
        fail "${failed:-$name}" "'$*' exited non-zero (whole log: $log)"
    fi
    echo "gpu_check: $name done in $((SECONDS - step_started)) s" >&2
}

if ((INSTALL)); then
    missing=()
    for pin in "${WHEEL_PINS[@]}"; do
        name=${pin%%==*} version=${pin#*==}
        compgen -G "$WHEELS/${name//-/_}-$version-*.whl" >/dev/null || missing+=("$pin")
    done
    ((${#missing[@]} == 0)) || fail install "no wheel in $WHEELS for: ${missing[*]}; fill it on a networked machine with: bench/gpu_check.sh --download-wheels"
    # datasets' own requirements resolve against what is installed, then these wheels; never the network.
    run_step install-datasets "$PYTHON" -m pip install --no-index --find-links "$WHEELS" datasets==5.2.0
    run_step install-judgetrain "$PYTHON" -m pip install --no-index --find-links "$WHEELS" --no-deps -e "$REPO"
fi

steps=(--out "$OUT" --device "$DEVICE")
((SMALL)) && steps+=(--small)
# torchrun with one process, its rendezvous on a free port of 127.0.0.1 (the machine may have no resolvable hostname).
torchrun_one() {
    local port
    port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$PYTHON" -m torch.distributed.run --nproc_per_node 1 --master_addr 127.0.0.1 --master_port "$port" "$@"
}

run_step setup "$PYTHON" "$CHECK" preflight build peak-before "${steps[@]}"
if [[ $DEVICE == cuda ]]; then
    run_step train-fsdp torchrun_one "$CHECK" train-fsdp "${steps[@]}"
fi
run_step train-ddp torchrun_one "$CHECK" train-ddp "${steps[@]}"
run_step judging "$PYTHON" "$CHECK" peak-after judge reward verdicts table "${steps[@]}"
cat "$OUT/results/table.txt"
echo "gpu_check: all steps passed in $((SECONDS - started)) s (logs: $OUT/logs)"
