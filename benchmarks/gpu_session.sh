#!/usr/bin/env bash
# GPU checks in one call on a lent CUDA machine (see docs/DESIGN.md, "Benchmarks"):
#   0. where PIPELINE (a `benchmarks/cuda_pipeline.py prepare` folder, made on a machine
#      with dlib) is set: the pipeline's results on the GPU against the CPU's (~20 s);
#   1. benchmarks/train.py at 256 px, batch 24, bf16 (NCHW, channels_last) + kernel table;
#   2. a short real paper-mode training run on the synthetic benchmark's training split
#      (128 px, batch 4, the settings of benchmarks/quality.py), exporting the generator;
#   3. benchmarks/model.py on the machine's CPU with 2 threads (a second CPU to compare);
#   4. the compiled NCHW variant of 1 (last: compiling takes ~1 min on 16 cores).
# Needs: DATA (a geogan-synth folder) and OUT (results folder); WHEELS (optional) holds
# wheels for packages the machine lacks (datasets, huggingface_hub 2.x, menpo, ...).
# Usage: DATA=path/to/synth OUT=/tmp/gpu STEPS=3000 [PIPELINE=path/to/prepared] bash benchmarks/gpu_session.sh
#
# Preparing a lent machine of this workplace (its image has torch, accelerate, safetensors,
# but not our datasets / huggingface_hub 2.x / menpo): in the repo root, ignored folders
#   geogan-synth --output .devdata/synth --size 128 --num-train 800 --num-eval 90
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl datasets==5.2.0 huggingface_hub==2.4.0 \
#     httpx2==2.16.2 httpcore2==2.16.2 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0 \
#     hf-xet==1.8.0 anyio==4.16.0 h11==0.16.0 idna==3.20 truststore==0.10.5
#   pip wheel --no-deps menpo==0.11.1 -w .whl      # pure Python, published as an sdist only
# then run with WHEELS=.whl DATA=.devdata/synth, carrying .whl and .devdata (~40 MB).
# One call took 383 s on an H200, 2026-11-26 (its compile step was cut at a 120 s limit then;
# compiling one variant alone took ~80 s, hence the 150 s default now).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to a geogan-synth folder}" "${OUT:?set OUT to a results folder}"
STEPS=${STEPS:-3000}
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, accelerate, datasets, huggingface_hub as h; print('torch', torch.__version__, 'accelerate', accelerate.__version__, 'datasets', datasets.__version__, 'hub', h.__version__)" || exit 1

if [ -n "${PIPELINE:-}" ]; then
  echo "== the pipeline on the GPU against the CPU"
  timeout 150 python3 benchmarks/cuda_pipeline.py check "$PIPELINE" 2>>"$OUT/errors.log" \
    | tee "$OUT/cuda_pipeline.md"
fi

echo "== throughput"
BENCH=(python3 benchmarks/train.py --gpu-only --steps 10 --repeats 5 --threads 8)
timeout 150 "${BENCH[@]}" --gpu-variants nchw channels_last --profile "$OUT/train_profile.txt" \
  2>"$OUT/errors.log" | tee "$OUT/train_bench.md"

echo "== paper-mode training, $STEPS steps"
RUN=/tmp/run-paper
start=$(date +%s)
timeout "${TRAIN_TIMEOUT:-170}" python3 train_accelerate.py --dataset_name "$DATA" \
  --attributes Mustache Goatee Eyeglasses --resolution 128 --train_batch_size 4 \
  --max_train_steps "$STEPS" --learning_rate 0.0001 --ngf 16 --n_blocks 3 --ndf 32 --n_scales 2 \
  --alpha_warmup_steps $((STEPS / 10)) --lr_decay_unit steps --lr_decay_every $((STEPS / 5)) \
  --checkpointing_steps $((STEPS / 6)) --save_at_checkpoints --validation_steps $((10 * STEPS + 1)) \
  --report_to none --seed 0 --dataloader_num_workers 6 --mixed_precision no \
  --output_dir "$RUN" 2>&1 | tr '\r' '\n' > "$OUT/train_run.log"
echo "training exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
tail -4 "$OUT/train_run.log"
last=$(ls -d "$RUN"/checkpoint-*/export 2>/dev/null | sort -V | tail -1)
final="$RUN"; [ -f "$RUN/model.safetensors" ] || final="$last"
echo "exported model: $final"
[ -n "$final" ] && cp "$final/config.json" "$OUT/"
# files coming back are capped at 16 MiB: the weights travel in parts (join with cat)
[ -n "$final" ] && split -b 15M "$final/model.safetensors" "$OUT/model.safetensors.part-"

echo "== CPU forward latency, 2 threads"
timeout 70 python3 benchmarks/model.py --runs 7 --threads 2 2>>"$OUT/errors.log" | tee "$OUT/model_cpu.md"

echo "== compiled throughput"
timeout "${COMPILE_TIMEOUT:-150}" "${BENCH[@]}" --gpu-variants compiled_nchw \
  2>>"$OUT/errors.log" | tee -a "$OUT/train_bench.md"
ls -la "$OUT"
