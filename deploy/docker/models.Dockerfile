# syntax=docker/dockerfile:1.7
# The built model repository, and the command that seeds a shared volume with it:
# `gateway models seed /seed /models [--gpu]` copies what the volume lacks and changes
# nothing it has (versions published through the gateway survive).
#   docker build -f deploy/docker/models.Dockerfile -t inference-gateway/models:0.1.0 .
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/gateway
WORKDIR /src
# The development lock (it holds the `models` extra), hashes checked; its torch is the CPU
# build (2.13.0+cpu), which only PyTorch's CPU index has (PyPI's pulls several GB of CUDA).
COPY requirements/dev.txt ./requirements/
RUN /opt/gateway/bin/pip install --require-hashes --no-deps \
      --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/dev.txt
COPY pyproject.toml README.md ./
COPY auth ./auth
COPY resilience ./resilience
COPY gateway ./gateway
COPY model_build ./model_build
COPY model_repository ./model_repository
RUN /opt/gateway/bin/pip install --no-deps --no-build-isolation . \
 && /opt/gateway/bin/gateway models build --repository /src/model_repository

FROM inference-gateway/gateway:0.1.0
COPY --from=build --chown=10001:10001 /src/model_repository /seed
USER 10001:10001
# A one-shot job: nothing to check while it runs.
HEALTHCHECK NONE
ENTRYPOINT ["gateway", "models", "seed", "/seed", "/models"]
