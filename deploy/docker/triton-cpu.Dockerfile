# syntax=docker/dockerfile:1.7
# Triton on CPUs, built without NGC: the `tritonserver` binary of the PyTriton wheel (Triton
# 2.51, the one the tests run), its Python backend, and the project's Python-based
# `onnxruntime` backend (devstack/backends/onnxruntime/model.py), so the model repository
# serves unchanged. For the Compose `cpu` profile and machines without NVIDIA's registry;
# the NGC image (triton.Dockerfile) stays the one for GPUs and production.
#   docker build -f deploy/docker/triton-cpu.Dockerfile -t inference-gateway/triton-cpu:2.51 .
# BASE_IMAGE: any image with Python 3.11 and its venv module (the backend stub is built for
# 3.11); PIP_CERT: a CA bundle for pip, mounted at build time, never in a layer.
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
# checkov:skip=CKV_DOCKER_7: every FROM is ${BASE_IMAGE}, whose default above names a release tag
FROM ${BASE_IMAGE} AS build
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/triton
# requirements/triton-cpu.txt: locked with hashes, at the versions the tests run with.
COPY requirements/triton-cpu.txt /tmp/triton-cpu.txt
RUN /opt/triton/bin/pip install --require-hashes --no-deps -r /tmp/triton-cpu.txt \
 && /opt/triton/bin/pip uninstall --yes pip setuptools wheel
# The backend folder Triton is pointed at: its Python backend with the stub for this
# Python, and the onnxruntime backend that stands in for the native one.
COPY devstack/backends/onnxruntime/model.py /opt/triton-backends/onnxruntime/model.py
RUN set -eu; \
    wheel=$(echo /opt/triton/lib/python3.*/site-packages); \
    python=$(/opt/triton/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'); \
    mkdir -p /opt/triton-backends/python; \
    cp -r "$wheel"/pytriton/tritonserver/backends/python/. /opt/triton-backends/python/; \
    cp "$wheel/pytriton/tritonserver/python_backend_stubs/$python/triton_python_backend_stub" \
       /opt/triton-backends/python/; \
    ln -s "$wheel/pytriton/tritonserver/bin/tritonserver" /opt/triton/bin/tritonserver; \
    ln -s "$wheel/nvidia_pytriton.libs" /opt/triton/libs

FROM ${BASE_IMAGE}
RUN groupadd --system --gid 1000 triton-server \
 && useradd --system --uid 1000 --gid triton-server --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin triton-server
COPY --from=build /opt/triton /opt/triton
# Triton sets the stub's execute bit itself at every load, so the backends are the user's.
COPY --from=build --chown=1000:1000 /opt/triton-backends /opt/triton/backends
# The stub imports numpy and onnxruntime from the first Python on PATH; the binary and the
# stub find their shared libraries in the wheel's own folder.
ENV PATH=/opt/triton/bin:$PATH \
    LD_LIBRARY_PATH=/opt/triton/libs \
    PYTHONDONTWRITEBYTECODE=1
USER 1000:1000
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2).status != 200)"]
ENTRYPOINT ["tritonserver", "--backend-directory=/opt/triton/backends"]
CMD ["--model-repository=/models", "--model-control-mode=explicit", "--load-model=*"]
