# syntax=docker/dockerfile:1.7
# Triton for the model repository: NVIDIA's release image (Triton 2.57, the first with the
# fix for tracing crashes under load, Triton issue 7795) plus the Python packages of the
# repository's Python-backend model (text_tokenizer needs `tokenizers`).
#   docker build -f deploy/docker/triton.Dockerfile -t inference-gateway/triton:25.04 .
#
# Why packages in the image, not a Python-backend execution environment (a conda-pack
# tarball per model): the tokenizer needs one pure-Python-ABI wheel that works with the
# image's own Python, so the stub runs as shipped; the image stays immutable and pinned,
# and a model load does not unpack an archive. An execution environment is the tool for a
# model that needs another Python version or packages that clash with the image's.
# BASE_IMAGE: the release image by default; PIP_CERT: a CA bundle for pip, mounted at build
# time, never in a layer.
ARG BASE_IMAGE=nvcr.io/nvidia/tritonserver:25.04-py3
# checkov:skip=CKV_DOCKER_7: every FROM is ${BASE_IMAGE}, whose default above names a release tag
FROM ${BASE_IMAGE}
ARG PIP_CERT
# requirements/triton.txt: locked with hashes, at the versions the tests run with.
COPY requirements/triton.txt /opt/gateway/triton-requirements.txt
RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --require-hashes \
      --no-deps --requirement /opt/gateway/triton-requirements.txt
# The release image's unprivileged user.
USER triton-server
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s --retries=3 \
  CMD ["curl", "--fail", "--silent", "http://127.0.0.1:8000/v2/health/ready"]
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models", "--model-control-mode=explicit", "--load-model=*"]
