/**
 * The calibration's fit and file writing, on synthetic points: a fit through the model recovers the
 * listSecondsPerMiB that generated the points, the closed-loop prediction queues as concurrency grows,
 * and the written file keeps the shape calibration.ts loads, with the fitted values and the points.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { DEFAULT_MODEL_PATH, loadModel, parseModel, type CalibrationFile, type Model } from '../../sim/model/calibration.js';
import { calibratedFile, fitListSecondsPerMiB, fitParameters, linearFit, predictListLatency, type MeasuredPoint, type Measurements } from './calibrate-fit.js';

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
        { nodes: 50, pods: 250, requestsPerSecond: 5, apiserverCpuPerSecond: 0.1, etcdCpuPerSecond: 0.05, rssMiB: 300 },
        { nodes: 200, pods: 1000, requestsPerSecond: 20, apiserverCpuPerSecond: 0.2, etcdCpuPerSecond: 0.1, rssMiB: 400 },
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
    expect(loaded.apiserver.smallRequestMedianSeconds).toBe(0.003);
    expect(loaded.apiserver.smallRequestCpuSeconds).toBe(0.0015);
    expect(loaded.apiserver.baselineRequestsPerNodePerSecond).toBe(0.1);
    // 100 MiB more for 900 more objects (pods + nodes).
    expect(loaded.apiserver.memoryPerObjectKiB).toBe(114);
    expect(loaded.apiserver.listMemoryAmplification).toBe(3);
    // Untouched parameters keep their value; the points are kept as measured.
    expect(loaded.apiserver.apfSeats).toBe(model.apiserver.apfSeats);
    expect(out.measuredPoints).toEqual(ms);
    const api = out.apiserver as Record<string, { source: string }>;
    expect(api.listSecondsPerMiB?.source).toMatch(/^fitted: sim:calibrate/);
    expect(api.smallRequestMedianSeconds?.source).toMatch(/^measured: sim:calibrate/);
  });
});
