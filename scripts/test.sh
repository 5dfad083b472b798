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

step "typecheck (Node, Workers, Deno)"
npm run --silent typecheck || status=1

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
cloudflare_leg='ip link set lo up && exec node_modules/.bin/vitest run test/contract/cloudflare.test.ts --reporter=default --reporter=json --outputFile.json=test-results/vitest-cloudflare.json'
if unshare -n true 2>/dev/null; then
  unshare -n sh -c "$cloudflare_leg" || status=1
elif unshare -rn true 2>/dev/null; then
  unshare -rn sh -c "$cloudflare_leg" || status=1
else
  echo "unshare is not permitted here: the workerd leg runs in the host network namespace (loopback addresses only)"
  sh -c "${cloudflare_leg#ip link set lo up && }" || status=1
fi

node scripts/test-summary.mjs test-results/vitest-main.json test-results/vitest-cloudflare.json test-results/deno-test.log || status=1
exit $status
