/**
 * The calibration's fit and file writing, on synthetic points: a fit through the model recovers the
 * listSecondsPerMiB that generated the points, the closed-loop prediction queues as concurrency grows,
 * and the written file keeps the shape calibration.ts loads, with the fitted values and the points.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { DEFAULT_MODEL_PATH, loadModel, parseModel, type CalibrationFile, type Model } from '../../sim/model/calibration.js';
import {
  calibratedFile,
  fitListSecondsPerMiB,
  fitParameters,
  linearFit,
  logNormalFromBuckets,
  type MeasuredPoint,
  type Measurements,
} from './calibrate-fit.js';
import { predictListLatency } from '../../sim/model/predict.js';

const MIB = 1048576;

function listPoint(model: Model, bytes: number, concurrency: number): MeasuredPoint {
  const p50 = predictListLatency(model, { nodes: 200, bytes, concurrency, cores: 2 });
  return {
    verb: 'LIST',
    resource: 'pods',
    nodes: 200,
    pods: 1000,
    objects: 1000,
    concurrency,
    requests: 5,
    bytes,
    wireBytes: bytes / 10,
    p50,
    p99: p50 * 1.2,
    logSigma: 0.1,
    serverMean: p50,
    apiserverCpu: p50,
    etcdCpu: 0.01,
    rssBeforeMiB: 300,
    rssPeakMiB: 300 + concurrency * (bytes / MIB) * 3,
  };
}

/** An idle window's histogram of `n` requests whose latencies are log-normal (median 4 ms, sigma 0.9). */
function restLatencies(n: number): { latencyBuckets: Array<[number, number]>; observations: number } {
  const cdf = (x: number) => 0.5 * (1 + erf(Math.log(x / 0.004) / 0.9 / Math.SQRT2));
  return { latencyBuckets: [0.005, 0.025, 0.05, 0.1, 0.2, 0.4].map((le) => [le, n * cdf(le)]), observations: n };
}

/** erf by its Taylor series (enough terms for |x| < 3). */
function erf(x: number): number {
  let sum = 0;
  let term = x;
  for (let k = 0; k < 80; k++) {
    sum += term / (2 * k + 1);
    term *= (-x * x) / (k + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

describe('calibrate-fit', () => {
  const model = loadModel();
  const truth: Model = { ...model, apiserver: { ...model.apiserver, listSecondsPerMiB: 0.031 } };
  const points = [listPoint(truth, 1 * MIB, 1), listPoint(truth, 4 * MIB, 1), listPoint(truth, 4 * MIB, 4), listPoint(truth, 10 * MIB, 1)];

  it('recovers the listSecondsPerMiB that generated the points', () => {
    expect(fitListSecondsPerMiB(model, points, 2)).toBeCloseTo(0.031, 4);
  });

  it('predicts a closed loop queueing more with more clients, and the larger LIST slower', () => {
    const at = (bytes: number, concurrency: number) => predictListLatency(model, { nodes: 200, bytes, concurrency, cores: 2 });
    expect(at(4 * MIB, 8)).toBeGreaterThan(at(4 * MIB, 2));
    expect(at(4 * MIB, 2)).toBeGreaterThan(at(4 * MIB, 1));
    expect(at(16 * MIB, 1) / at(4 * MIB, 1)).toBeGreaterThan(3);
  });

  it('fits a log-normal to latency histograms', () => {
    const fit = logNormalFromBuckets([restLatencies(1000), restLatencies(3000)]);
    expect(fit?.median).toBeCloseTo(0.004, 5);
    expect(fit?.sigma).toBeCloseTo(0.9, 3);
    expect(fit?.observations).toBe(4000);
    expect(logNormalFromBuckets([{ latencyBuckets: [[0.005, 10]], observations: 10 }])).toBeUndefined();
  });

  it('fits a line', () => {
    expect(linearFit([1, 2, 3], [5, 7, 9])).toEqual({ a: 3, b: 2 });
    expect(linearFit([1, 1], [2, 3])).toBeUndefined();
  });

  it('writes a file calibration.ts loads, with the fitted values, their sources, the date and the points', () => {
    const ms: Measurements = {
      date: '2030-01-02',
      cores: 2,
      loadAverageStart: [1, 1, 1],
      loadAverageEnd: [2, 2, 2],
      durationSeconds: 100,
      controlPlane: 'test',
      background: [
        { nodes: 50, pods: 250, requestsPerSecond: 5, apiserverCpuPerSecond: 0.1, etcdCpuPerSecond: 0.05, rssMiB: 300, ...restLatencies(300) },
        { nodes: 200, pods: 1000, requestsPerSecond: 20, apiserverCpuPerSecond: 0.2, etcdCpuPerSecond: 0.1, rssMiB: 400, ...restLatencies(1200) },
      ],
      points: [
        ...points,
        { ...points[0]!, verb: 'GET', objects: 1, requests: 60, bytes: 4000, wireBytes: 4000, p50: 0.003, logSigma: 0.4, apiserverCpu: 0.0015 },
      ],
    };
    const fitted = fitParameters(model, ms);
    const file = JSON.parse(readFileSync(DEFAULT_MODEL_PATH, 'utf8')) as CalibrationFile & Record<string, unknown>;
    const out = calibratedFile(file, fitted, ms);
    const loaded = parseModel(out as unknown as CalibrationFile);
    expect(loaded.date).toBe('2030-01-02');
    expect(loaded.apiserver.listSecondsPerMiB).toBeCloseTo(0.031, 2);
    // The small requests are the idle cluster's: its histogram's log-normal, its CPU per request.
    expect(loaded.apiserver.smallRequestMedianSeconds).toBeCloseTo(0.004, 4);
    expect(loaded.apiserver.smallRequestSigma).toBeCloseTo(0.9, 2);
    expect(loaded.apiserver.smallRequestCpuSeconds).toBe(0.012);
    expect(loaded.apiserver.baselineRequestsPerNodePerSecond).toBe(0.1);
    expect(loaded.apiserver.memoryBaseMiB).toBe(300);
    // Memory from RSS only bounds: 100 MiB more for 900 more objects is at most 114 KiB per object, and
    // RSS grew by 3x the LISTs in flight at least; the model's 8 KiB and 5x agree, so they stay, cited.
    expect(loaded.apiserver.memoryPerObjectKiB).toBe(model.apiserver.memoryPerObjectKiB);
    expect(loaded.apiserver.listMemoryAmplification).toBe(model.apiserver.listMemoryAmplification);
    // Untouched parameters keep their value; the points are kept as measured.
    expect(loaded.apiserver.apfSeats).toBe(model.apiserver.apfSeats);
    expect(out.measuredPoints).toEqual(ms);
    const api = out.apiserver as Record<string, { source: string }>;
    expect(api.listSecondsPerMiB?.source).toMatch(/^fitted: sim:calibrate/);
    expect(api.smallRequestMedianSeconds?.source).toMatch(/^fitted: sim:calibrate.*GETs of one pod alone, one at a time: median 3 ms/);
    expect(api.memoryPerObjectKiB?.source).toMatch(/^assumed: .* \| bound from sim:calibrate .*114 KiB per object.*consistent with the value$/);

    // A bound the value contradicts replaces it; a second run replaces the first's note, not adds to it.
    const tight: Model = { ...model, apiserver: { ...model.apiserver, memoryPerObjectKiB: 500, listMemoryAmplification: 1 } };
    const again = fitParameters(tight, ms, { memoryPerObjectKiB: api.memoryPerObjectKiB!.source });
    expect(again.memoryPerObjectKiB?.value).toBe(114);
    expect(again.memoryPerObjectKiB?.source).toMatch(/^measured: .*the value is that bound$/);
    expect(again.listMemoryAmplification?.value).toBe(3);
    const kept = fitParameters(model, ms, { memoryPerObjectKiB: api.memoryPerObjectKiB!.source });
    expect(kept.memoryPerObjectKiB?.source.split(' | bound from ')).toHaveLength(2);
  });
});
