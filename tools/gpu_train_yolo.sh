#!/usr/bin/env bash
# Train YOLO on a bare GPU machine that holds torch but neither ultralytics nor the raw data, when the repository
# and the data reach it in pieces of limited size (README: "Training on a GPU machine"). Three steps:
#
#   here:   bash tools/gpu_train_yolo.sh prepare [SHARD_SIZE]    # .dev/pack (dataset shards), .whl, .dev/stub
#   there:  bash tools/gpu_train_yolo.sh receive                 # once per call that carried files under .dev/
#           (the first call carries .whl, .dev/stub and a shard; the next ones one shard each; the last one the
#           last shard, .dev/pack/SHA256SUMS and .dev/pack/manifest.json)
#   there:  bash tools/gpu_train_yolo.sh train OUT [facewear train yolo options ...]
#           unpacks (every shard checked first; once per machine), trains with --device 0 --no-plots, and copies
#           best.pt and last.pt (optimizer stripped, about 5 MB each), results.csv and args.yaml into OUT (a
#           relative OUT is under the repository root).
#
# Carried files land in the working tree, which the next call may replace, so `receive` moves them to
# $GPU_SCRATCH (default /tmp/facewear-gpu), which lasts as long as the machine. Python is $PY (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
SCRATCH=${GPU_SCRATCH:-/tmp/facewear-gpu}
ULTRALYTICS_WHEELS="ultralytics==8.4.190 ultralytics-thop==2.2.3 ultralytics-platform==0.1.99"

case "${1:-}" in
prepare)
    size=${2:-27MB}
    [ -e .dev/pack ] && { echo "gpu_train_yolo: .dev/pack exists; remove it first (nothing is overwritten)" >&2; exit 2; }
    { git check-ignore -q .dev/x && git check-ignore -q .whl/x; } || { echo "gpu_train_yolo: add /.dev/ and /.whl/ to .git/info/exclude" >&2; exit 2; }
    facewear data pack --out .dev/pack --shard-size "$size" --quality 75 --reencode
    mkdir -p .whl .dev/stub/polars
    # shellcheck disable=SC2086
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl $ULTRALYTICS_WHEELS
    cat > .dev/stub/polars/__init__.py <<'EOF'
"""Stand-in for polars (a 50 MB wheel): ultralytics reads results.csv with it only to embed it in checkpoints and
treats an error there as no results; plots are off (--no-plots)."""


def read_csv(*args, **kwargs):
    raise RuntimeError("polars is not installed on this machine")


class DataFrame:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("polars is not installed on this machine")
EOF
    ls -l .dev/pack .whl
    ;;
receive)
    shopt -s nullglob
    mkdir -p "$SCRATCH/pack" "$SCRATCH/site"
    wheels=(.whl/*.whl)
    if [ ${#wheels[@]} -gt 0 ] && [ ! -d "$SCRATCH/site/ultralytics" ]; then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SCRATCH/site" "${wheels[@]}"
    fi
    if [ -d .dev/stub/polars ]; then cp -r .dev/stub/polars "$SCRATCH/site/"; fi
    carried=(.dev/pack/*)
    if [ ${#carried[@]} -gt 0 ]; then mv "${carried[@]}" "$SCRATCH/pack/"; fi
    ls "$SCRATCH/pack"
    ;;
train)
    out=${2:?"usage: gpu_train_yolo.sh train OUT [facewear train yolo options]"}
    shift 2
    export PYTHONPATH="$SCRATCH/site:$PWD" PYTHONUNBUFFERED=1
    [ -d "$SCRATCH/ds" ] || $PY -m facewear data unpack "$SCRATCH/pack" --out "$SCRATCH/ds" --no-progress
    mkdir -p "$out"
    rm -rf "$SCRATCH/runs/gpu"  # a retry must not hand back an earlier attempt's weights
    rc=0
    $PY -m facewear train yolo --data "$SCRATCH/ds/facewear4.yaml" --device 0 --no-plots --project "$SCRATCH/runs" \
        --name gpu --exist-ok "$@" > "$out/train.log" 2>&1 || rc=$?
    w="$SCRATCH/runs/gpu/weights"
    for f in best last; do
        if [ -f "$w/$f.pt" ]; then
            $PY -c "import sys; from ultralytics.utils.torch_utils import strip_optimizer as s; s(sys.argv[1], sys.argv[2])" \
                "$w/$f.pt" "$out/$f.pt" || cp "$w/$f.pt" "$out/"
        fi
    done
    cp "$SCRATCH/runs/gpu/results.csv" "$SCRATCH/runs/gpu/args.yaml" "$out/" 2>/dev/null || true
    tr '\r' '\n' < "$out/train.log" | grep -v "it/s\|s/it" | tail -20 || true
    exit $rc
    ;;
*)
    sed -n 2,15p "$0"
    exit 2
    ;;
esac
