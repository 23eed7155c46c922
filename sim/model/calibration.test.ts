/**
 * The model against measurements at small sizes, with the error each comparison allows:
 *
 * - the points `npm run sim:calibrate` measured on the local control plane, kept in the calibration file
 *   (measuredPoints): every LIST point's median latency (pods and nodes LISTs without resourceVersion,
 *   one to eight clients back to back) as the model predicts it through the same closed loop the fit
 *   used, within a factor of 1.5 (one parameter, listSecondsPerMiB, is fitted to all of them: the model
 *   is linear in the bytes and queues as 1/(1-utilisation), so it cannot hit every point; the fit was
 *   within a factor of 1.35 at its run);
 * - the idle cluster of the same run (measuredPoints.background: the API server's own latency histogram
 *   of resource requests at rest, at each size): the share of requests under each of its first
 *   buckets (5 ms, 25 ms), read from the model's own /metrics histogram at rest, within 0.05 of the
 *   measured share (a few hundred requests per window: a share moves by about 0.01 between runs).
 *
 * No longer compared: the collector benchmark's rows in docs/benchmarks.md (a 200-node cluster; p99 of
 * non-WATCH requests 13.4 ms at rest, 0.42/0.62/1.38 s with naive agents on 50/100/200 of its nodes),
 * which the model reproduced while listSecondsPerMiB and the small requests were fitted to them (0.055
 * s/MiB, 2 ms). That benchmark ran with the audit log on and the node runtime's workers on the same two
 * cores; sim:calibrate's idle cluster answers 99 % of its requests within 5 ms.
 * Measured directly, the API server alone spends several times less per MiB listed (listSecondsPerMiB's
 * source, measuredPoints); in that benchmark the 200 agents' own JSON decoding ran on the same two cores
 * as the control plane, and naive agents started together relist together, so their LISTs arrive in
 * bursts whose queueing the model's per-second rates average away. The model now predicts those rows
 * far lower than measured: a known gap of the model (bursts), not of the calibration.
 */
import { describe, expect, it } from '@jest/globals';
import { ApiServerModel, NO_DEMAND } from './apiserver.js';
import { readFileSync } from 'node:fs';
import { DEFAULT_MODEL_PATH, loadModel } from './calibration.js';
import { predictListLatency } from './predict.js';

/** The largest difference between the model's and the measured share of idle requests under a bucket. */
const ALLOWED_SHARE = 0.05;
/** The largest |ln(predicted/measured)| of a calibration point: a factor of 1.5. */
const ALLOWED_POINT_LOG_ERROR = Math.log(1.5);

/**
 * The share of the model's small requests under `le` seconds after two minutes at rest on `nodes` nodes
 * and `cores` cores, from the model's own /metrics histogram (as the gates read it).
 */
function idleShare(nodes: number, cores: number, le: number): number {
  const m = loadModel();
  const api = new ApiServerModel({ ...m, apiserver: { ...m.apiserver, coresByNodes: [[Number.MAX_SAFE_INTEGER, cores]] } }, nodes, 0);
  for (let t = 2; t <= 120; t += 2) api.step(t * 1000, 2, NO_DEMAND);
  const text = api.metricsText();
  const under = Number(new RegExp(`apiserver_request_duration_seconds_bucket\\{verb="GET",le="${le}"\\} (\\d+)`).exec(text)?.[1]);
  const count = Number(/apiserver_request_duration_seconds_count\{verb="GET"\} (\d+)/.exec(text)?.[1]);
  return under / count;
}

interface StoredPoint {
  verb: string;
  resource: string;
  nodes: number;
  concurrency: number;
  bytes: number;
  p50: number;
}

const file = JSON.parse(readFileSync(DEFAULT_MODEL_PATH, 'utf8')) as {
  date: string;
  apiserver: Record<string, { source: string }>;
  measuredPoints: {
    date: string;
    cores: number;
    points: StoredPoint[];
    loadAverageStart: number[];
    background: Array<{ nodes: number; latencyBuckets: Array<[number, number]>; observations: number }>;
  };
};
const idleShares = file.measuredPoints.background.flatMap((b) =>
  b.latencyBuckets
    .filter(([le]) => le === 0.005 || le === 0.025)
    .map(([le, n]) => ({ nodes: b.nodes, le, share: n / b.observations, name: `${b.nodes} nodes, under ${le * 1000} ms` })),
);
const listPoints = file.measuredPoints.points
  .filter((p) => p.verb === 'LIST')
  .map((p) => ({ ...p, name: `LIST ${p.resource} on ${p.nodes} nodes from ${p.concurrency} client(s)` }));

describe('calibration', () => {
  it.each(listPoints)('predicts the median of the calibration point "$name" within a factor of 1.5', (p) => {
    const predicted = predictListLatency(loadModel(), { nodes: p.nodes, bytes: p.bytes, concurrency: p.concurrency, cores: file.measuredPoints.cores });
    expect(Math.abs(Math.log(predicted / p.p50))).toBeLessThanOrEqual(ALLOWED_POINT_LOG_ERROR);
  });

  it.each(idleShares)('predicts the share of the idle cluster requests ($name) within 0.05', (p) => {
    expect(Math.abs(idleShare(p.nodes, file.measuredPoints.cores, p.le) - p.share)).toBeLessThanOrEqual(ALLOWED_SHARE);
  });

  it('names the provenance of every parameter', () => {
    const raw = JSON.parse(readFileSync(DEFAULT_MODEL_PATH, 'utf8')) as Record<string, unknown>;
    expect(String(raw.date)).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    let entries = 0;
    for (const [section, body] of Object.entries(raw)) {
      // measuredPoints holds sim:calibrate's raw points (what the fitted entries came from), not parameters.
      if (section === '//' || section === 'date' || section === 'measuredPoints') continue;
      for (const [name, entry] of Object.entries(body as Record<string, { value?: unknown; source?: unknown }>)) {
        expect([name, entry.value !== undefined]).toEqual([name, true]);
        expect([name, String(entry.source)]).toEqual([name, expect.stringMatching(/^(measured|fitted|documented|assumed): \S/)]);
        entries++;
      }
    }
    expect(entries).toBeGreaterThan(20);
  });

  it('keeps the points its sim:calibrate entries came from, of the same date', () => {
    const calibrated = Object.values(file.apiserver).filter((e) => e.source.includes('sim:calibrate'));
    expect(calibrated.length).toBeGreaterThan(5);
    expect(file.measuredPoints.date).toBe(file.date);
    expect(listPoints.length).toBeGreaterThan(3);
    expect(idleShares.length).toBeGreaterThan(3);
    expect(file.measuredPoints.loadAverageStart).toHaveLength(3);
  });
});
