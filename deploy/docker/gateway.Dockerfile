# syntax=docker/dockerfile:1.7
# The gateway: `gateway serve` on port 8000 (REST) and 8001 (gRPC), as a non-root user, nothing but the
# virtual environment in the final stage.
#   docker build -f deploy/docker/gateway.Dockerfile -t inference-gateway/gateway:0.1.0 .
# BASE_IMAGE: any image with Python 3.11 and its venv module (the tests build on a Debian
# base made with mmdebstrap); PIP_CERT: a CA bundle for pip, for a registry reached through
# a proxy: a path mounted at build time (`podman build -v HOST:PATH:ro`), never a layer's.
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
# checkov:skip=CKV_DOCKER_7: every FROM is ${BASE_IMAGE}, whose default above names a release tag
FROM ${BASE_IMAGE} AS build
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/gateway
WORKDIR /src
# The lock first (a layer that changes only with it): exactly the versions the tests ran,
# every file's hash checked; then the package itself, built with the lock's setuptools.
COPY requirements/runtime.txt ./requirements/
RUN /opt/gateway/bin/pip install --require-hashes --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY auth ./auth
COPY resilience ./resilience
COPY gateway ./gateway
RUN /opt/gateway/bin/pip install --no-deps --no-build-isolation . \
 && /opt/gateway/bin/pip check \
 && /opt/gateway/bin/pip uninstall --yes pip setuptools wheel

FROM ${BASE_IMAGE}
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway
COPY --from=build /opt/gateway /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_STATE_DIR=/tmp/gateway
USER 10001:10001
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v2/health/live', timeout=2).status != 200)"]
ENTRYPOINT ["gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--grpc-port", "8001", "--workers", "2"]
