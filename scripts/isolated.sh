#!/usr/bin/env bash
# Runs a command in a new network namespace that has only loopback, so nothing it starts (servers,
# workerd, Chromium) can reach outside. Falls back to a user namespace, then to the host (saying so).
set -uo pipefail
if unshare -n true 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && exec "$0" "$@"' "$@"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn sh -c 'ip link set lo up && exec "$0" "$@"' "$@"
else
  echo "(unshare is not permitted here: running on the host's loopback addresses)" >&2
  exec "$@"
fi
