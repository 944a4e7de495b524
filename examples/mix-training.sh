#!/usr/bin/env bash
# Mix training on the zoo classifier (issue #8; results and reading in docs/mix-training.md).
# Rows fine-tuned from the same zoo-resnet weights with one recipe (sysnoise train's defaults,
# sysnoise.train.finetune.Recipe: 6 epochs, batch 64, AdamW one-cycle peak 2e-3, seed 0, the
# whole scenes-train split; TRAIN_ARGS adds options to every row, e.g. the first, gentler recipe:
# OUT=results/mix-gentle TRAIN_ARGS="--epochs 3 --lr 5e-4"), then the two train-by-test matrices
# on scenes val. A step is skipped when its output exists, so a rerun resumes. About 2-4 minutes
# of CPU per row here, 3-5 per model in a matrix.
set -euo pipefail
SYSNOISE=${SYSNOISE:-.venv/bin/sysnoise}
OUT=${OUT:-results/mix}
INIT=${INIT:-$OUT/init/zoo-resnet.safetensors}
read -r -a EXTRA <<< "${TRAIN_ARGS:-}"

# A copy of the starting weights: every row starts from exactly these, even if the zoo is retrained.
if [ ! -f "$INIT" ]; then
    mkdir -p "$(dirname "$INIT")"
    cp src/sysnoise/zoo/weights/zoo-resnet.safetensors "$INIT"
fi
sha256sum "$INIT"

train() {  # NAME LABEL [sysnoise train options...]
    local name=$1 label=$2
    shift 2
    [ -f "$OUT/$name.safetensors" ] || "$SYSNOISE" train --init "$INIT" --out "$OUT" --name "$name" --label "$label" \
        "${EXTRA[@]}" "$@"
}

# Pillow decoder + Pillow bilinear is the zoo's reference system: one row serves both matrices.
train pillow-bilinear "Pillow-bilinear / Pillow decoder"
# The same system with another seed: how far apart two rows are when only the training noise differs.
train pillow-bilinear-seed1 "Pillow-bilinear, seed 1" --seed 1
train opencv-bilinear "OpenCV-bilinear" --pipeline resize=opencv-bilinear
train opencv-nearest "OpenCV-nearest" --pipeline resize=opencv-nearest
train mix-resize "mix of the 3 resizes" --mix resize=pillow-bilinear,opencv-bilinear,opencv-nearest
train ffmpeg "FFmpeg decoder" --pipeline decoder=ffmpeg
train mix-decoder "mix of Pillow and FFmpeg decoders" --mix decoder=pillow,ffmpeg

"$SYSNOISE" matrix --data scenes --no-progress --out "$OUT/matrix-resize" --title "Trained resize x tested resize" \
    --test resize=pillow-bilinear,opencv-bilinear,opencv-nearest \
    --models "$OUT"/{pillow-bilinear,pillow-bilinear-seed1,opencv-bilinear,opencv-nearest,mix-resize}.safetensors
"$SYSNOISE" matrix --data scenes --no-progress --out "$OUT/matrix-decoder" --title "Trained decoder x tested decoder" \
    --test decoder=pillow,ffmpeg \
    --models "$OUT"/{pillow-bilinear,pillow-bilinear-seed1,ffmpeg,mix-decoder}.safetensors
