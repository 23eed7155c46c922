/**
 * `npm run bench:replay`: replays the incident on a simulated fleet in virtual time and prints a table
 * per scenario; writes the same as JSON (deterministic: the same seed and inputs give the same file) and
 * an SVG of the largest clusters with the operator off and on.
 *
 *   --seed N          PRNG seed (default 1)
 *   --quick           the quick fleet (10 clusters, 50..2,000 nodes) and shorter horizons
 *   --scenario NAME   one of incident, operator-defaults, healthy, healthy-ready, a model scenario of
 *                     scenarios/models.ts or a fault scenario of faults.ts (repeatable; default all)
 *   --fleet FILE      a fleet file (JSON array of { name, nodes }) instead of the generated one
 *   --model FILE      a calibration file instead of sim/model/calibration.json
 *   --out FILE        where to write the JSON (default sim/results/replay[-quick].json); the SVG goes beside it
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeFleet, FULL_FLEET, generateFleet, loadFleet, QUICK_FLEET } from './fleet.js';
import { DEFAULT_MODEL_PATH, loadModel } from './model/calibration.js';
import { renderSvg } from './svg.js';
import { formatTable, FULL_HORIZONS, QUICK_HORIZONS, runScenario, SCENARIOS, type ScenarioName, type ScenarioResult } from './replay.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: '1' },
      quick: { type: 'boolean', default: false },
      scenario: { type: 'string', multiple: true },
      fleet: { type: 'string' },
      model: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
  const scenarios = (values.scenario ?? [...SCENARIOS]) as ScenarioName[];
  for (const s of scenarios) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s} (known: ${SCENARIOS.join(', ')})`);
  const quick = values.quick ?? false;
  const fleet = values.fleet ? loadFleet(values.fleet) : generateFleet(quick ? QUICK_FLEET : FULL_FLEET, seed);
  const modelPath = values.model ?? DEFAULT_MODEL_PATH;
  const model = loadModel(modelPath);
  const f = describeFleet(fleet);
  console.log(
    `fleet: ${f.clusters} clusters, ${f.nodes} nodes (min ${f.min}, p50 ${f.p50}, p90 ${f.p90}, max ${f.max}); model of ${model.date}; seed ${seed}${quick ? '; quick' : ''}`,
  );
  const results: ScenarioResult[] = [];
  for (const s of scenarios) {
    const wall = Date.now();
    const r = await runScenario(s, { seed, model, fleet, horizons: quick ? QUICK_HORIZONS : FULL_HORIZONS });
    results.push(r);
    console.log(`${s}: ${r.simulatedSeconds} s simulated in ${((Date.now() - wall) / 1000).toFixed(1)} s wall, ${r.passes} passes`);
  }
  console.log(`\n${formatTable(results)}\n`);
  const root = join(dirname(fileURLToPath(import.meta.url)), 'results');
  const out = values.out ?? join(root, quick ? 'replay-quick.json' : 'replay.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ seed, quick, model: { date: model.date }, fleet, results }, null, 1)}\n`);
  const svg = out.replace(/\.json$/, '') + '.svg';
  writeFileSync(svg, renderSvg(results, Object.fromEntries(fleet.map((c) => [c.name, c.nodes]))));
  console.log(`wrote ${out} and ${svg}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
