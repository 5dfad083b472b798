// Adds up the legs' reports (vitest JSON, `deno test` output) and prints one plain closing line:
// "tests: N passed, N failed".
import { existsSync, readFileSync } from 'node:fs';

let passed = 0,
  failed = 0,
  skipped = 0,
  missing = 0;
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) {
    console.error(`missing test report ${file}: that leg did not run to the end`);
    missing++;
    continue;
  }
  const text = readFileSync(file, 'utf8');
  if (!file.endsWith('.json')) {
    // deno test ends with "ok | 1 passed | 0 failed" (or "FAILED | ..."), colours stripped.
    const totals = /(\d+) passed[^|]*\| (\d+) failed/.exec(text.replace(/\x1b\[[0-9;]*m/g, ''));
    if (!totals) {
      console.error(`no totals in ${file}: that leg did not run to the end`);
      missing++;
      continue;
    }
    passed += Number(totals[1]);
    failed += Number(totals[2]);
    continue;
  }
  const report = JSON.parse(text);
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
if (missing > 0 || failed > 0 || passed === 0) process.exit(1);
