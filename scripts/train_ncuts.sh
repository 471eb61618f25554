#!/usr/bin/env bash
# Train every DeepNCuts model of the BSDS500 table (issue 11), resumably: rerun the script after an
# interruption and each run continues from its last checkpoint (finished runs are only re-saved).
#   runs/ncuts-untrained/seed0     VGG-16 (HED weights) + random head, no training (--epochs 0)
#   runs/ncuts-e2e/seed{0,1,2}     conv4 + conv5 + head trained end to end through the NCuts layer
#   runs/ncuts-frozen/seed0        frozen backbone, head only (the earlier protocol, same backbone)
# All share one feature cache (runs/cache). Data: $BSDS500 (default ../shared/bsds500).
# LIMIT training images (the first of the train split), EPOCHS epochs, VAL val images for the val loss.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${BSDS500:-../shared/bsds500}"
LIMIT="${LIMIT:-100}"
EPOCHS="${EPOCHS:-3}"
VAL="${VAL:-20}"
SEEDS="${SEEDS:-0 1 2}"
common=(--data "$DATA" --cache runs/cache --limit "$LIMIT" --val-images "$VAL" --threads 1 --checkpoint-every 20 --resume)
.venv/bin/matbackprop train ncuts "${common[@]}" --out runs/ncuts-untrained --epochs 0
first=1
for s in $SEEDS; do
    .venv/bin/matbackprop train ncuts "${common[@]}" --out runs/ncuts-e2e --seed "$s" --epochs "$EPOCHS"
    if [ "$first" = 1 ]; then  # the frozen protocol right after the first seed: both early for evaluation
        .venv/bin/matbackprop train ncuts "${common[@]}" --out runs/ncuts-frozen --train-blocks 0 --epochs "$EPOCHS"
        first=0
    fi
done
