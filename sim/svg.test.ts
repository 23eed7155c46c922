/** The replay's SVG: a panel per large cluster and scenario, the outages shaded where the model had them. */
import { describe, expect, it } from '@jest/globals';
import { generateFleet, QUICK_FLEET } from './fleet.js';
import { loadModel } from './model/calibration.js';
import { QUICK_HORIZONS, runScenario, type ReplayOptions } from './replay.js';
import { renderSvg } from './svg.js';

const fleet = generateFleet(QUICK_FLEET, 1);
const o: ReplayOptions = { seed: 1, model: loadModel(), fleet, horizons: QUICK_HORIZONS };
const sizes = Object.fromEntries(fleet.map((c) => [c.name, c.nodes]));

describe('renderSvg', () => {
  it('draws the three largest clusters with the operator off and on, and shades the outages', async () => {
    const incident = await runScenario('incident', o);
    const operator = await runScenario('operator-defaults', o);
    const svg = renderSvg([incident, operator], sizes);
    expect(svg.startsWith('<svg ')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    for (const c of fleet.slice(0, 3)) {
      expect(svg).toContain(`${c.name} (${c.nodes} nodes): no operator`);
      expect(svg).toContain(`${c.name} (${c.nodes} nodes): operator, default spec`);
    }
    // The largest cluster's API server is down for a while without the operator: shaded rectangles.
    const downPoints = incident.series[fleet[0]!.name]!.filter((p) => !p.up && p.t <= 1200).length;
    expect(downPoints).toBeGreaterThan(0);
    expect((svg.match(/fill="#f4b6b6"/g) ?? []).length).toBeGreaterThanOrEqual(downPoints);
  }, 60_000);
});
