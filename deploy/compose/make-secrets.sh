#!/usr/bin/env bash
# Writes the stack's secrets into deploy/compose/secrets/ (git-ignored), once: the key pepper,
# the cache secret and the token Prometheus scrapes /metrics with (64 random hex characters
# each), an admin key, and Redis's password as the two files that use it (Redis's
# `requirepass` line, the gateway's Redis URL).
# Needs python3 alone: the admin key is made with the project's own key format
# (auth/keys.py), so nothing has to be built or installed first.
# Existing files are kept (a new pepper would invalidate every API key); each file is
# written whole or not at all, so a failed run leaves no empty secret behind.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="$here/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
umask 022  # files readable in the containers (bind mounts keep their mode); the folder is 700

random() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
admin_key() {  # gwk_<12 id>_<32 secret><checksum>, from auth/keys.py alone (no dependency)
  python3 - "$root/auth" <<'PY'
import sys
import types

package = types.ModuleType("auth")  # auth/__init__.py imports the store's dependencies
package.__path__ = [sys.argv[1]]
sys.modules["auth"] = package
from auth.keys import ApiKey

print(ApiKey.generate())
PY
}
redis_auth_conf() { printf 'requirepass %s\n' "$(cat "$dir/redis_password")"; }
gateway_redis_url() { printf 'redis://:%s@redis:6379/0\n' "$(cat "$dir/redis_password")"; }

write() {  # write NAME COMMAND: NAME from COMMAND's output, unless NAME is there already
  local name=$1 made=$2
  [ -s "$dir/$name" ] && return 0
  "$made" >"$dir/.$name.partial"
  mv "$dir/.$name.partial" "$dir/$name"
}
write gateway_key_pepper random
write gateway_cache_secret random
write gateway_metrics_token random
write gateway_admin_key admin_key
write redis_password random
write redis_auth_conf redis_auth_conf
write gateway_redis_url gateway_redis_url
echo "secrets in $dir (the admin key: $dir/gateway_admin_key)"
