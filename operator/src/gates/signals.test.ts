import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parsePrometheusText } from './promtext.js';
import { SIGNAL_NAMES, apiServerSignals, coreDNSSignals, isGatedApiRequest, type SignalName } from './signals.js';

/** The API server's signals (the ones {@link apiServerSignals} computes). */
const API_SERVER_SIGNALS: readonly SignalName[] = SIGNAL_NAMES.filter((n) => !n.startsWith('coreDNS'));
/** CoreDNS's signals (the ones {@link coreDNSSignals} computes). */
const CORE_DNS_SIGNALS: readonly SignalName[] = SIGNAL_NAMES.filter((n) => n.startsWith('coreDNS'));

function fixture(name: string): string {
  return readFileSync(new URL(`../../../testkit/operator/gates/testdata/${name}`, import.meta.url), 'utf8');
}

// The fixtures are two scrapes 30 s apart whose increases were designed by hand (see the comments on each
// expectation); nothing below is derived from the code under test.
const api1 = parsePrometheusText(fixture('kube-apiserver-metrics-1.txt'));
const api2 = parsePrometheusText(fixture('kube-apiserver-metrics-2.txt'));
const dns1 = parsePrometheusText(fixture('coredns-metrics-1.txt'));
const dns2 = parsePrometheusText(fixture('coredns-metrics-2.txt'));

describe('apiServerSignals', () => {
  const { values, sampleCounts } = apiServerSignals(api1, api2, 30);

  it('p99 over non-long-running requests only', () => {
    // Increases in the window: GET pods 900 (600 ≤ 5 ms, all ≤ 25 ms), POST events 10 (5 ≤ 25 ms, all ≤ 50 ms),
    // LIST pods 90 (30 ≤ 0.2, 60 ≤ 0.4, 75 ≤ 0.6, 90 ≤ 0.8), LIST nodes 0; excluded: WATCH 50, CONNECT exec 2
    // and GET pods/log 10, all slow. Sum by le: … 0.4 → 970, 0.6 → 985, 0.8 → 1000. Rank 990 falls in
    // (0.6, 0.8]: 0.6 + 0.2 · (990 − 985) / (1000 − 985).
    expect(values.apiServerP99Seconds).toBeCloseTo(0.6 + 0.2 / 3, 12);
    expect(sampleCounts.apiServerP99Seconds).toBe(1000);
  });

  it('error ratio counts 5xx and 429 over the same requests', () => {
    // 1000 gated requests, of which LIST pods 500 ×5 and 429 ×5 (the 429 series is new in scrape 2);
    // the 7 errors on pods/log are excluded with their subresource.
    expect(values.apiServerErrorRatio).toBeCloseTo(0.01, 12);
    expect(sampleCounts.apiServerErrorRatio).toBe(1000);
  });

  it('request rate and LIST rate', () => {
    expect(values.apiServerRequestRate).toBeCloseTo(1000 / 30, 12);
    expect(sampleCounts.apiServerRequestRate).toBe(1000);
    // LIST pods: 80 + 5 + 5; LIST nodes: 0.
    expect(values.apiServerListRate).toBeCloseTo(3, 12);
    expect(sampleCounts.apiServerListRate).toBe(90);
  });

  it('APF rejections per second', () => {
    // queue-full went 12 → 18, time-out stayed at 3.
    expect(values.apfRejectionsPerSecond).toBeCloseTo(0.2, 12);
    expect(sampleCounts.apfRejectionsPerSecond).toBe(6);
  });

  it('computes only API server signals', () => {
    expect(Object.keys(values).sort()).toEqual([...API_SERVER_SIGNALS].sort());
  });

  it('an idle window has no latency or error ratio but real zero rates', () => {
    const idle = apiServerSignals(api2, api2, 10);
    expect(idle.values).toEqual({ apiServerRequestRate: 0, apiServerListRate: 0, apfRejectionsPerSecond: 0 });
    expect(idle.sampleCounts).toEqual({
      apiServerP99Seconds: 0,
      apiServerErrorRatio: 0,
      apiServerRequestRate: 0,
      apiServerListRate: 0,
      apfRejectionsPerSecond: 0,
    });
  });

  it('a page without API server metrics gives no values at all', () => {
    expect(apiServerSignals(dns1, dns2, 30).values).toEqual({});
  });

  it('APF rejections are 0, not missing, when no rejection series exist yet', () => {
    const strip = (text: string): string =>
      text
        .split('\n')
        .filter((l) => !l.startsWith('apiserver_flowcontrol_rejected_requests_total'))
        .join('\n');
    const r = apiServerSignals(
      parsePrometheusText(strip(fixture('kube-apiserver-metrics-1.txt'))),
      parsePrometheusText(strip(fixture('kube-apiserver-metrics-2.txt'))),
      30,
    );
    expect(r.values.apfRejectionsPerSecond).toBe(0);
  });

  it('handles a counter reset by taking the current values as the increase', () => {
    // A restarted server that has since served 4 GETs (3 fast, 1 in (0.2, 0.4]), one of them a 503.
    const restarted = parsePrometheusText(
      [
        '# TYPE apiserver_request_duration_seconds histogram',
        'apiserver_request_duration_seconds_bucket{resource="pods",subresource="",verb="GET",le="0.1"} 3',
        'apiserver_request_duration_seconds_bucket{resource="pods",subresource="",verb="GET",le="0.2"} 3',
        'apiserver_request_duration_seconds_bucket{resource="pods",subresource="",verb="GET",le="0.4"} 4',
        'apiserver_request_duration_seconds_bucket{resource="pods",subresource="",verb="GET",le="+Inf"} 4',
        '# TYPE apiserver_request_total counter',
        'apiserver_request_total{code="200",resource="pods",subresource="",verb="GET"} 3',
        'apiserver_request_total{code="503",resource="pods",subresource="",verb="GET"} 1',
      ].join('\n'),
    );
    const before = parsePrometheusText(
      [
        'apiserver_request_duration_seconds_bucket{resource="pods",subresource="",verb="GET",le="0.1"} 300',
        'apiserver_request_duration_seconds_bucket{resource="pods",subresource="",verb="GET",le="0.2"} 400',
        'apiserver_request_duration_seconds_bucket{resource="pods",subresource="",verb="GET",le="0.4"} 500',
        'apiserver_request_duration_seconds_bucket{resource="pods",subresource="",verb="GET",le="+Inf"} 500',
        'apiserver_request_total{code="200",resource="pods",subresource="",verb="GET"} 500',
      ].join('\n'),
    );
    const r = apiServerSignals(before, restarted, 20);
    // rank 0.99 · 4 = 3.96 in (0.2, 0.4]: 0.2 + 0.2 · 0.96.
    expect(r.values.apiServerP99Seconds).toBeCloseTo(0.392, 12);
    expect(r.values.apiServerErrorRatio).toBeCloseTo(0.25, 12);
    expect(r.values.apiServerRequestRate).toBeCloseTo(0.2, 12);
  });

  it.each([0, -1, NaN, Infinity])('rejects a window of %d seconds', (w) => {
    expect(() => apiServerSignals(api1, api2, w)).toThrow(RangeError);
  });
});

describe('isGatedApiRequest', () => {
  it.each([
    [{ verb: 'GET', subresource: '' }, true],
    [{ verb: 'LIST' }, true],
    [{ verb: 'WATCH', subresource: '' }, false],
    [{ verb: 'watchlist' }, false],
    [{ verb: 'CONNECT', subresource: 'exec' }, false],
    [{ verb: 'GET', subresource: 'log' }, false],
    [{ verb: 'GET', subresource: 'proxy' }, false],
    [{ verb: 'POST', subresource: 'portforward' }, false],
    [{ verb: 'POST', subresource: 'attach' }, false],
    [{ verb: 'PATCH', subresource: 'status' }, true],
  ])('%j → %s', (labels, expected) => {
    expect(isGatedApiRequest(labels)).toBe(expected);
  });
});

describe('coreDNSSignals', () => {
  const { values, sampleCounts } = coreDNSSignals(dns1, dns2, 30);

  it('error ratio is SERVFAIL + REFUSED over all responses', () => {
    // Responses in the window: NOERROR 1900, NXDOMAIN 60, SERVFAIL 30, REFUSED 10 (new series).
    expect(values.coreDNSErrorRatio).toBeCloseTo(40 / 2000, 12);
    expect(sampleCounts.coreDNSErrorRatio).toBe(2000);
  });

  it('p99 over all query types', () => {
    // A: 1200 and AAAA: 800 observations; summed cumulative … 0.001 → 1930, 0.002 → 1975, 0.004 → 1990,
    // 0.008 → 2000. Rank 1980 falls in (0.002, 0.004]: 0.002 + 0.002 · 5 / 15.
    expect(values.coreDNSP99Seconds).toBeCloseTo(0.002 + 0.002 / 3, 14);
    expect(sampleCounts.coreDNSP99Seconds).toBe(2000);
  });

  it('request rate', () => {
    expect(values.coreDNSRequestRate).toBeCloseTo(2000 / 30, 12);
    expect(sampleCounts.coreDNSRequestRate).toBe(2000);
  });

  it('computes only CoreDNS signals, and none from an API server page', () => {
    expect(Object.keys(values).sort()).toEqual([...CORE_DNS_SIGNALS].sort());
    expect(coreDNSSignals(api1, api2, 30).values).toEqual({});
  });

  it('an idle window has no error ratio or latency but a zero rate', () => {
    expect(coreDNSSignals(dns2, dns2, 15).values).toEqual({ coreDNSRequestRate: 0 });
  });
});

describe('signal names', () => {
  it('are split between API server and CoreDNS without overlap', () => {
    expect([...API_SERVER_SIGNALS, ...CORE_DNS_SIGNALS].sort()).toEqual([...SIGNAL_NAMES].sort());
    expect(API_SERVER_SIGNALS).toHaveLength(5);
    expect(CORE_DNS_SIGNALS).toHaveLength(3);
  });
});
