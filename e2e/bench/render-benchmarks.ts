/**
 * `npm run bench:docs`: rewrites the generated sections of docs/benchmarks.md from the committed
 * benchmark results: the break-glass figures (from e2e/bench/results/breakglass.json), the fleet-scale
 * figures with the operator's sizing table (from e2e/bench/results/fleet.json) and the fleet replay's
 * (from sim/results/replay.json). `--check` only compares and fails when the doc is stale
 * (`npm run bench:docs -- --check`; the unit tests e2e/bench/breakglass-doc.unit.test.ts,
 * fleet-doc.unit.test.ts and replay-doc.unit.test.ts do the same in CI).
 *
 * Runs under Node's type stripping with the project's resolve hook, like every npm script.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withBreakGlassSection } from './breakglass-doc.js';
import { readResults, REPO_ROOT } from './breakglass-results.js';
import { withFleetSection } from './fleet-doc.js';
import { readFleetResults } from './fleet-results.js';
import { readReplayResults, withReplaySection } from './replay-doc.js';

/** The document this script generates sections of. */
const DOC = 'docs/benchmarks.md';

const path = join(REPO_ROOT, DOC);
const current = readFileSync(path, 'utf8');
const next = withReplaySection(withFleetSection(withBreakGlassSection(current, readResults()), readFleetResults()), readReplayResults(REPO_ROOT));
if (process.argv.includes('--check')) {
  if (next !== current) {
    console.error(`${DOC} is stale: run npm run bench:docs`);
    process.exit(1);
  }
  console.log(`${DOC} matches the benchmark results`);
} else if (next !== current) {
  writeFileSync(path, next);
  console.log(`${DOC}: generated figures regenerated`);
} else {
  console.log(`${DOC} already matches the benchmark results`);
}
