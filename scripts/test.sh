#!/usr/bin/env bash
# `npm test`: type-checks every runtime's code, builds the Worker as `wrangler deploy` would, then
# runs the unit tests and the contract suite on Node and Deno, and the contract suite on workerd
# inside a fresh network namespace (loopback only). Prints one closing line with the totals.
set -uo pipefail
cd "$(dirname "$0")/.."
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
mkdir -p test-results
rm -f test-results/vitest-*.json

step() { printf '\n== %s\n' "$*"; }
status=0

# Browser tests need Debian's chromium, cluster tests its redis-server (started and killed by the
# tests themselves): install what is missing when we can (root + apt), else fail naming it.
step "system packages"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || { echo "could not install the Debian packages: ${missing[*]}"; exit 1; }
  else
    echo "the tests need the Debian packages: sudo apt-get install -y ${missing[*]}"; exit 1
  fi
fi
chromium --version 2>/dev/null | tail -n 1
redis-server --version

step "typecheck (Node, Workers, Deno)"
npm run --silent typecheck || status=1

step "lint + format check (biome ci, no writes)"
node_modules/.bin/biome ci . || status=1

step "wrangler deploy --dry-run"
node_modules/.bin/wrangler deploy --dry-run --outdir test-results/worker-build > test-results/wrangler-build.log 2>&1 \
  && tail -n 3 test-results/wrangler-build.log || { cat test-results/wrangler-build.log; status=1; }

step "unit tests + contract suite on Node and Deno"
node_modules/.bin/vitest run --exclude test/contract/cloudflare.test.ts \
  --reporter=default --reporter=json --outputFile.json=test-results/vitest-main.json || status=1

step "Deno-native tests (deno test)"
node_modules/.bin/deno test --allow-net --allow-env --allow-read 2>&1 | tee test-results/deno-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "contract suite on Cloudflare (workerd), network namespace with loopback only"
isolated() { bash scripts/isolated.sh "$@"; }
isolated node_modules/.bin/vitest run test/contract/cloudflare.test.ts \
  --reporter=default --reporter=json --outputFile.json=test-results/vitest-cloudflare.json || status=1

step "browser end-to-end: the demo page in Chromium against Node (all scenarios), Deno and workerd (a call)"
isolated node_modules/.bin/vitest run --config vitest.e2e.config.ts \
  --reporter=default --reporter=json --outputFile.json=test-results/vitest-e2e.json || status=1

node scripts/test-summary.mjs test-results/vitest-main.json test-results/vitest-cloudflare.json test-results/vitest-e2e.json test-results/deno-test.log || status=1
exit $status
