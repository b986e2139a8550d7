# syntax=docker/dockerfile:1.7
# The built model repository, and the command that seeds a shared volume with it:
# `gateway models seed /seed /models [--gpu]` copies what the volume lacks, updates what a
# new image changed (by content hash), and leaves what was published at run time.
#   docker build -f deploy/docker/models.Dockerfile -t inference-gateway/models:0.1.0 .
# It builds on its own (no other image of the project needed first), from BASE_IMAGE: any
# image with Python 3.11 and its venv module. PIP_CERT: a CA bundle for pip, mounted at
# build time, never in a layer. TORCH_INDEX: where torch's CPU build comes from; empty,
# with PIP_FIND_LINKS pointing at a mounted wheel folder, for a machine without that index.
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
# checkov:skip=CKV_DOCKER_7: every FROM is ${BASE_IMAGE}, whose default above names a release tag
FROM ${BASE_IMAGE} AS build
ARG PIP_CERT
ARG PIP_FIND_LINKS
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/gateway
WORKDIR /src
# The development lock (it holds the `models` extra), hashes checked; its torch is the CPU
# build (2.13.0+cpu), which only PyTorch's CPU index has (PyPI's pulls several GB of CUDA).
COPY requirements/dev.txt ./requirements/
RUN /opt/gateway/bin/pip install --require-hashes --no-deps \
      ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} -r requirements/dev.txt
COPY pyproject.toml README.md ./
COPY auth ./auth
COPY resilience ./resilience
COPY gateway ./gateway
COPY model_build ./model_build
COPY model_repository ./model_repository
RUN /opt/gateway/bin/pip install --no-deps --no-build-isolation . \
 && /opt/gateway/bin/gateway models build --repository /src/model_repository

# What seeding runs: the runtime lock and the package, as in the gateway image.
FROM ${BASE_IMAGE} AS seeder
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/gateway
WORKDIR /src
COPY requirements/runtime.txt ./requirements/
RUN /opt/gateway/bin/pip install --require-hashes --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY auth ./auth
COPY resilience ./resilience
COPY gateway ./gateway
RUN /opt/gateway/bin/pip install --no-deps --no-build-isolation . \
 && /opt/gateway/bin/pip uninstall --yes pip setuptools wheel

FROM ${BASE_IMAGE}
COPY --from=seeder /opt/gateway /opt/gateway
COPY --from=build --chown=10001:10001 /src/model_repository /seed
# The shared volume's mount point, owned by the seeding user: an empty named volume takes
# the owner of the folder it is mounted on (Docker and podman both), so seeding as uid
# 10001 can write into a volume Compose has just made.
RUN mkdir /models && chown 10001:10001 /models
ENV PATH=/opt/gateway/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
# A one-shot job: nothing to check while it runs.
HEALTHCHECK NONE
ENTRYPOINT ["gateway", "models", "seed", "/seed", "/models"]
