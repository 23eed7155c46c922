/**
 * The model's predictions for what a calibration measures on a real API server: the median latency of
 * LISTs sent by a few clients back to back (a closed loop), and of one small request on an idle cluster.
 * `npm run sim:calibrate` fits the model through these; the calibration tests (unit, against the points
 * the calibration file keeps; e2e, against the real control plane) compare them with measurements.
 */
import { ApiServerModel } from './apiserver.js';
import type { Model } from './calibration.js';

const MIB = 1048576;

/**
 * The model's median latency of a LIST of `bytes` sent by `concurrency` clients back to back (a closed
 * loop) to an API server of `cores` on a cluster of `nodes`: the fixed point of "latency = the model's
 * LIST latency at the utilisation that concurrency/latency LISTs per second cause". This is the
 * simulator's own ApiServerModel, stepped once per trial latency, not a re-derivation of it.
 */
export function predictListLatency(model: Model, p: { nodes: number; bytes: number; concurrency: number; cores: number }): number {
  const m: Model = { ...model, apiserver: { ...model.apiserver, coresByNodes: [[Number.MAX_SAFE_INTEGER, p.cores]] } };
  let r = (p.bytes / MIB) * m.apiserver.listSecondsPerMiB + m.apiserver.smallRequestMedianSeconds;
  for (let i = 0; i < 80; i++) {
    const api = new ApiServerModel(m, p.nodes, 0);
    api.step(2000, 2, { smallRps: 0, lists: [{ rps: p.concurrency / r, bytes: p.bytes }] });
    r = (r + api.listLatency(p.bytes)) / 2;
  }
  return r;
}

/** The model's median latency of one small request (GET of one object) on an otherwise idle cluster. */
export function predictSmallLatency(model: Model, nodes: number, cores: number): number {
  const m: Model = { ...model, apiserver: { ...model.apiserver, coresByNodes: [[Number.MAX_SAFE_INTEGER, cores]] } };
  const api = new ApiServerModel(m, nodes, 0);
  api.step(2000, 2, { smallRps: 0, lists: [] });
  return api.smallLatency();
}
