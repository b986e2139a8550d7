#!/usr/bin/env sh
# Release a model version through a running gateway (publish, shadow, canary, promote, or
# roll back). GATEWAY_URL and GATEWAY_KEY (an admin key) say where and as whom; the options
# are release_model.py's (--help). Needs only python3.
set -eu
exec python3 "$(dirname "$0")/release_model.py" "$@"
