#!/usr/bin/env bash
# Set up the environment and run the main job: a quick DeepNCuts run on BSDS500, end to end
# (train on 40 images, segment and score 20 test images against the baselines), in a few minutes.
# The full experiment: see docs/results.md. Data folder: $BSDS500 (default ../shared/bsds500).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA="${BSDS500:-../shared/bsds500}"
OUT=runs/quick-ncuts
# The backbone features are cached in runs/cache (keyed by data, split, backbone and weights), shared
# with the full runs of scripts/train_ncuts.sh.
.venv/bin/matbackprop train ncuts --quick --data "$DATA" --out "$OUT" --cache runs/cache --threads 1 "$@"
.venv/bin/matbackprop eval ncuts --quick --data "$DATA" --out "$OUT" \
    --results "$OUT/bsds500_quick.json" --report "$OUT/report.md" --figures "$OUT/figures"
echo "quick-run outputs: $OUT/report.md, $OUT/figures/"
