#!/usr/bin/env bash
# Build TensorRT plans (FP16) of the repository's ONNX models with trtexec, inside NVIDIA's
# Triton or TensorRT release image on the GPU they will run on (a plan is specific to the
# GPU model and the TensorRT version):
#
#   docker run --rm --gpus all -v "$PWD/model_repository:/models" -v "$PWD/deploy/docker:/scripts" \
#     nvcr.io/nvidia/tritonserver:25.04-py3 bash /scripts/build-tensorrt-plans.sh /models
#
# Each ONNX version V of model M becomes model M_trt, version V, `model.plan`, with a
# config for the tensorrt_plan platform. The GPU overlay does not need this: it runs the
# ONNX models with ONNX Runtime's TensorRT accelerator, which builds engines at load time;
# plans save that start-up time. Not run in this project's CI (no GPU there).
set -euo pipefail
repository=${1:?usage: build-tensorrt-plans.sh MODEL_REPOSITORY}
trtexec=${TRTEXEC:-/usr/src/tensorrt/bin/trtexec}

# model  input shapes: min / opt / max (batch first)
declare -A shapes=(
  [tabular_classifier]="features:1x30 features:16x30 features:64x30"
  [digits_classifier]="image:1x8x8 image:16x8x8 image:64x8x8"
  [text_encoder]="input_ids:1x16,attention_mask:1x16 input_ids:16x64,attention_mask:16x64 input_ids:64x256,attention_mask:64x256"
)

for model in "${!shapes[@]}"; do
  read -r min opt max <<<"${shapes[$model]}"
  for onnx in "$repository/$model"/[0-9]*/model.onnx; do
    [ -e "$onnx" ] || continue
    version=$(basename "$(dirname "$onnx")")
    out="$repository/${model}_trt/$version"
    mkdir -p "$out"
    # A version TensorRT cannot parse (e.g. dynamically quantized int8 operators) is
    # reported and skipped; the others are still built.
    "$trtexec" --onnx="$onnx" --saveEngine="$out/model.plan" --fp16 \
      --minShapes="$min" --optShapes="$opt" --maxShapes="$max" \
      || { echo "skipped $model version $version: trtexec failed" >&2; rmdir "$out" 2>/dev/null || true; }
  done
  if [ ! -e "$repository/${model}_trt/config.pbtxt" ]; then
    sed -e "s/^name: \"$model\"/name: \"${model}_trt\"/" \
        -e 's/^backend: "onnxruntime"/platform: "tensorrt_plan"/' \
        -e 's/kind: KIND_CPU/kind: KIND_GPU/' \
        -e '/intra_op_thread_count\|inter_op_thread_count/d' \
        "$repository/$model/config.pbtxt" >"$repository/${model}_trt/config.pbtxt"
  fi
done
