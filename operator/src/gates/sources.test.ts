import { describe, expect, it } from '@jest/globals';
import { ApiServerMetricsSource, TextEndpointSource } from './scrape.js';
import type { Measurement, MetricSource } from './sources.js';
import { CompositeSource } from './sources.js';
import {
  API1,
  API2,
  DNS1,
  DNS2,
  API_VALUES,
  DNS_VALUES,
  expectValues,
  ManualClock,
  PageServer,
  kubeconfigFor,
  clusterClient,
} from '../../../testkit/operator/gates/sources.js';

describe('CompositeSource', () => {
  const at = (s: number): Date => new Date(Date.parse('2026-11-25T10:00:00Z') + s * 1000);
  const fixed = (m: Measurement): MetricSource => ({ measure: async () => m });

  it('merges the values of ok parts, with the longest window', async () => {
    const m = await new CompositeSource([
      {
        name: 'apiserver',
        source: fixed({ kind: 'ok', at: at(1), windowSeconds: 10, values: { apiServerP99Seconds: 0.3 }, sampleCounts: { apiServerP99Seconds: 400 } }),
      },
      { name: 'coredns', source: fixed({ kind: 'ok', at: at(2), windowSeconds: 12, values: { coreDNSErrorRatio: 0.001 } }) },
    ]).measure();
    expect(m).toEqual({
      kind: 'ok',
      at: at(2),
      windowSeconds: 12,
      values: { apiServerP99Seconds: 0.3, coreDNSErrorRatio: 0.001 },
      sampleCounts: { apiServerP99Seconds: 400 },
    });
  });

  it('a part without data leaves its signals undefined and explains why', async () => {
    const m = await new CompositeSource([
      { name: 'apiserver', source: fixed({ kind: 'ok', at: at(1), windowSeconds: 10, values: { apiServerErrorRatio: 0 } }) },
      { name: 'coredns', source: fixed({ kind: 'nodata', at: at(1), message: 'cannot scrape CoreDNS: HTTP 500' }) },
    ]).measure();
    expect(m).toEqual({
      kind: 'ok',
      at: at(1),
      windowSeconds: 10,
      values: { apiServerErrorRatio: 0 },
      message: 'coredns: no data: cannot scrape CoreDNS: HTTP 500',
    });
  });

  it('unreachable wins over everything', async () => {
    const m = await new CompositeSource([
      { name: 'apiserver', source: fixed({ kind: 'unreachable', at: at(3), message: 'API server unreachable: GET /metrics: ECONNREFUSED' }) },
      { name: 'coredns', source: fixed({ kind: 'ok', at: at(1), windowSeconds: 10, values: { coreDNSErrorRatio: 0.5 } }) },
    ]).measure();
    expect(m).toEqual({ kind: 'unreachable', at: at(3), message: 'apiserver: API server unreachable: GET /metrics: ECONNREFUSED' });
  });

  it('all parts without data is nodata with every reason; a throwing part counts as nodata', async () => {
    const m = await new CompositeSource([
      { name: 'apiserver', source: fixed({ kind: 'nodata', at: at(1), message: 'warming up' }) },
      {
        name: 'coredns',
        source: {
          measure: async () => {
            throw new Error('bug');
          },
        },
      },
    ]).measure();
    expect(m.kind).toBe('nodata');
    expect(m.kind === 'nodata' && m.message).toBe('apiserver: warming up; coredns: source failed: bug');
  });

  it('end to end: API server and CoreDNS sources over HTTP', async () => {
    const api = await new PageServer().start();
    const dns = await new PageServer().start();
    try {
      const clock = new ManualClock();
      const composite = new CompositeSource([
        { name: 'apiserver', source: new ApiServerMetricsSource(clusterClient(kubeconfigFor(api.url)), { clock }) },
        { name: 'coredns', source: new TextEndpointSource(`${dns.url}/metrics`, { clock }) },
      ]);
      api.page = API1;
      dns.page = DNS1;
      expect((await composite.measure()).kind).toBe('nodata');
      clock.advance(30);
      api.page = API2;
      dns.page = DNS2;
      const m = await composite.measure();
      expectValues(m, { ...API_VALUES, ...DNS_VALUES });
      expect(m).toMatchObject({ windowSeconds: 30 });
    } finally {
      await api.stop();
      await dns.stop();
    }
  });
});
