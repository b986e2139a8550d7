#!/usr/bin/env bash
# Writes the Compose stack's secrets into deploy/compose/secrets/ (git-ignored), once:
# the key pepper and the cache secret (64 random hex characters each) and an admin key.
# Existing files are kept: a new pepper would invalidate every API key.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
umask 022  # files readable in the containers (bind mounts keep their mode); the folder is 700
random() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
admin_key() {  # the format `gateway keys generate` prints: gwk_<12 id>_<32 secret><checksum>
  if command -v gateway >/dev/null 2>&1; then gateway keys generate
  else docker run --rm inference-gateway/gateway:0.1.0 keys generate; fi
}
[ -s "$dir/gateway_key_pepper" ] || random >"$dir/gateway_key_pepper"
[ -s "$dir/gateway_cache_secret" ] || random >"$dir/gateway_cache_secret"
[ -s "$dir/gateway_admin_key" ] || admin_key >"$dir/gateway_admin_key"
echo "secrets in $dir (the admin key: $dir/gateway_admin_key)"
