#!/bin/sh
# Retrain, then re-export into the `models` volume (the train image's default command):
#   docker compose --profile train run --rm train retrain [KEY=VALUE ...]
# KEY=VALUE pairs override the training config (deblur-train --set), e.g. steps=20000 paired=data/GOPRO_Large.
# Environment: TRAIN_CONFIG (default: the shipped recipe), MODEL_VERSION (default: retrain-<UTC time>; also
# names the run folder runs/<version>, so the same version resumes an interrupted run), MODEL_OUT.
# The export is parity-checked and written atomically; the API switches to it on reload (SIGHUP or
# POST /admin/reload), never by itself.
set -eu
config="${TRAIN_CONFIG:-/app/models/train-config.json}"
version="${MODEL_VERSION:-retrain-$(date -u +%Y%m%d-%H%M%S)}"
out="${MODEL_OUT:-/models/deblur-generator.onnx}"
run_dir="runs/${version}"

deblur-train --config "$config" --set "run_dir=${run_dir}" "$@"
deblur-export --run-dir "$run_dir" --out "$out" --version "$version"
echo "retrain: exported ${out} (version ${version}); reload the API: docker compose kill -s HUP api"
