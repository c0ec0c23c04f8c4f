# syntax=docker/dockerfile:1
# Two images from one file, both installed from constraints.txt (the pins `make test` uses):
#   docker build -t deblur .                       serving image (default: the last stage): ONNX Runtime
#                                                  with CUDA 13 + cuDNN 9 wheels from PyPI, no TensorFlow
#   docker build --target train -t deblur-train .  training image: TensorFlow with CUDA + the `train` extra
# GPU hosts need NVIDIA driver >= 580 (CUDA 13) and the NVIDIA Container Toolkit. CPU-only images:
#   --build-arg ORT_EXTRAS= --build-arg TF_EXTRAS=   (what docker-compose.cpu.yml does)

FROM python:3.11-slim AS base
LABEL org.opencontainers.image.title="deblur" \
      org.opencontainers.image.description="Motion deblurring on ONNX Runtime with seam-free tiling" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# One unprivileged user, same uid in both images: the API reads what the `train` container exports into
# the shared `models` volume (export writes mode 0600). /models and /app/runs are volume mount points;
# Docker seeds an empty named volume with the directory's content and owner on first mount.
RUN groupadd --gid 10001 deblur \
    && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /app --create-home --shell /usr/sbin/nologin deblur \
    && install -d -o 10001 -g 10001 /models /app/runs
WORKDIR /app

# Serving dependencies in a throwaway stage; only the venv reaches the final image.
FROM base AS build
ARG ORT_EXTRAS=cuda,cudnn
COPY constraints.txt /src/
# The CUDA/cuDNN wheels (~1.6 GB) first, in a layer of their own: source edits do not re-download them.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
    && pip install -c /src/constraints.txt "onnxruntime-gpu[${ORT_EXTRAS}]"
COPY pyproject.toml /src/
COPY service/ /src/service/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -c /src/constraints.txt /src

# Training image: `docker compose --profile train run --rm train retrain` (docker/retrain.sh).
FROM base AS train
ARG TF_EXTRAS=and-cuda
COPY constraints.txt /src/
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
    && pip install -c /src/constraints.txt "tensorflow[${TF_EXTRAS}]"
COPY pyproject.toml /src/
COPY service/ /src/service/
COPY training/ /src/training/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -c /src/constraints.txt "/src[train]"
# The shipped recipe (train-config.json) and weights, outside the volume so an old volume cannot shadow them.
COPY --chown=10001:10001 models/ /app/models/
COPY --chmod=755 docker/retrain.sh /usr/local/bin/retrain
USER 10001:10001
CMD ["retrain"]

# Serving image (default target).
FROM base AS serve
COPY --from=build /opt/venv /opt/venv
# The shipped model, where compose mounts the `models` volume (seeded from here when first created).
COPY --chown=10001:10001 models/ /models/
ENV DEBLUR_MODEL_PATH=/models/deblur-generator.onnx \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001:10001
EXPOSE 8000
# No curl in the slim image: urllib raises (exit 1) on a refused connection and on 503 (not ready).
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["deblur-serve"]
