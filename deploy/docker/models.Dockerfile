# syntax=docker/dockerfile:1.7
# The built model repository, and the command that seeds a shared volume with it:
# `gateway models seed /seed /models [--gpu]` copies what the volume lacks and changes
# nothing it has (versions published through the gateway survive).
#   docker build -f deploy/docker/models.Dockerfile -t inference-gateway/models:0.1.0 .
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/gateway
WORKDIR /src
COPY pyproject.toml README.md ./
COPY auth ./auth
COPY gateway ./gateway
COPY model_repository ./model_repository
# The CPU build of torch (the default one pulls several GB of CUDA libraries).
RUN /opt/gateway/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && /opt/gateway/bin/pip install '.[models]' \
 && /opt/gateway/bin/gateway models build --repository /src/model_repository

FROM inference-gateway/gateway:0.1.0
COPY --from=build --chown=10001:10001 /src/model_repository /seed
USER 10001:10001
# A one-shot job: nothing to check while it runs.
HEALTHCHECK NONE
ENTRYPOINT ["gateway", "models", "seed", "/seed", "/models"]
