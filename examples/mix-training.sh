#!/usr/bin/env bash
# Mix training on the zoo classifier (issue #8; results and reading in docs/mix-training.md).
# Six rows fine-tuned from the same zoo-resnet weights with one recipe (sysnoise train's defaults:
# 3 epochs, batch 64, AdamW one-cycle peak 5e-4, seed 0, the whole scenes-train split), then the
# two train-by-test matrices on scenes val. Each step is skipped when its output exists, so a
# rerun resumes. About 5-7 minutes of CPU per row here, plus a few minutes per matrix.
set -euo pipefail
SYSNOISE=${SYSNOISE:-.venv/bin/sysnoise}
OUT=${OUT:-results/mix}
INIT="$OUT/init/zoo-resnet.safetensors"

# A copy of the starting weights: every row starts from exactly these, even if the zoo is retrained.
mkdir -p "$OUT/init"
[ -f "$INIT" ] || cp src/sysnoise/zoo/weights/zoo-resnet.safetensors "$INIT"
sha256sum "$INIT"

train() {  # NAME LABEL [sysnoise train options...]
    local name=$1 label=$2
    shift 2
    [ -f "$OUT/$name.safetensors" ] || "$SYSNOISE" train --init "$INIT" --out "$OUT" --name "$name" --label "$label" "$@"
}

# Pillow decoder + Pillow bilinear is the zoo's reference system: one row serves both matrices.
train pillow-bilinear "Pillow-bilinear / Pillow decoder (reference system)"
train opencv-bilinear "OpenCV-bilinear" --pipeline resize=opencv-bilinear
train opencv-nearest "OpenCV-nearest" --pipeline resize=opencv-nearest
train mix-resize "mix of the 3 resizes" --mix resize=pillow-bilinear,opencv-bilinear,opencv-nearest
train ffmpeg "FFmpeg decoder" --pipeline decoder=ffmpeg
train mix-decoder "mix of Pillow and FFmpeg decoders" --mix decoder=pillow,ffmpeg

"$SYSNOISE" matrix --data scenes --no-progress --out "$OUT/matrix-resize" --title "Trained resize x tested resize" \
    --test resize=pillow-bilinear,opencv-bilinear,opencv-nearest \
    --models "$OUT"/{pillow-bilinear,opencv-bilinear,opencv-nearest,mix-resize}.safetensors
"$SYSNOISE" matrix --data scenes --no-progress --out "$OUT/matrix-decoder" --title "Trained decoder x tested decoder" \
    --test decoder=pillow,ffmpeg \
    --models "$OUT"/{pillow-bilinear,ffmpeg,mix-decoder}.safetensors
