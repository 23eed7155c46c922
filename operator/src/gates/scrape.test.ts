import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ClusterRequestError } from '../cluster/kubeapi.js';
import { RawGetError } from '../controller/kube.js';
import { ApiServerMetricsSource, TextEndpointSource, type RawGetter } from './scrape.js';
import type { Measurement, MetricSource } from './sources.js';
import {
  API1,
  API2,
  DNS1,
  DNS2,
  otherProcess,
  API_VALUES,
  DNS_VALUES,
  expectValues,
  ManualClock,
  PageServer,
  closedPort,
  kubeconfigFor,
  clusterClient,
} from '../../../testkit/operator/gates/sources.js';

describe('ApiServerMetricsSource (through the cluster client and a local server)', () => {
  const api = new PageServer();
  beforeAll(async () => {
    await api.start();
  });
  afterAll(async () => {
    await api.stop();
  });

  function source(clock: ManualClock, timeoutMs = 2000): ApiServerMetricsSource {
    return new ApiServerMetricsSource(clusterClient(kubeconfigFor(api.url), timeoutMs), { clock });
  }
  async function scrape(s: MetricSource, page: string): Promise<Measurement> {
    api.page = page;
    api.status = 200;
    api.hang = false;
    return s.measure();
  }

  it('warms up, then measures the window between two scrapes', async () => {
    const clock = new ManualClock();
    const s = source(clock);
    const first = await scrape(s, API1);
    expect(first).toEqual({ kind: 'nodata', at: clock.now(), message: expect.stringContaining('warming up') });
    clock.advance(30);
    const second = await scrape(s, API2);
    expectValues(second, API_VALUES);
    expect(second).toMatchObject({ kind: 'ok', at: clock.now(), windowSeconds: 30 });
    expect(second.kind === 'ok' && second.sampleCounts).toMatchObject({ apiServerP99Seconds: 1000, apiServerErrorRatio: 1000 });
    expect(api.requests.at(-1)?.url).toBe('/metrics');
    expect(api.requests.at(-1)?.headers.authorization).toBe('Bearer test-token');
  });

  it('reports a restart as nodata for one window, then measures against the new process', async () => {
    const clock = new ManualClock();
    const s = source(clock);
    await scrape(s, API1);
    clock.advance(30);
    await scrape(s, API2);
    clock.advance(30);
    // The restarted process's counters are lower; comparing them with the old process would be garbage.
    const restarted = await scrape(s, otherProcess(API1, '1.76405600e+09'));
    expect(restarted).toMatchObject({ kind: 'nodata', message: 'API server restarted; new baseline' });
    clock.advance(30);
    expectValues(await scrape(s, otherProcess(API2, '1.76405600e+09')), API_VALUES);
  });

  it('keeps one baseline per replica when scrapes alternate between API servers', async () => {
    const clock = new ManualClock();
    const s = source(clock);
    const replicaB = (page: string): string => otherProcess(page, '1.764000000e+09'); // started before A
    expect(await scrape(s, API1)).toMatchObject({ kind: 'nodata', message: expect.stringContaining('warming up') });
    clock.advance(10);
    expect(await scrape(s, replicaB(API1))).toMatchObject({ kind: 'nodata', message: expect.stringContaining('another API server instance answered') });
    clock.advance(20);
    // Replica A again, 30 s after its own first scrape: compared with that one, not with replica B.
    const a2 = await scrape(s, API2);
    expectValues(a2, API_VALUES);
    expect(a2).toMatchObject({ windowSeconds: 30 });
    clock.advance(15);
    expect(await scrape(s, replicaB(API2))).toMatchObject({ kind: 'ok', windowSeconds: 35 });
  });

  it('a malformed page is nodata naming the line, and does not replace the baseline', async () => {
    const clock = new ManualClock();
    const s = source(clock);
    await scrape(s, API1);
    clock.advance(15);
    // A malformed line of a family the gates read (lines of other families are not even parsed).
    const broken = await scrape(s, `${API1}\napiserver_request_total{le="1" 3\n`);
    expect(broken.kind).toBe('nodata');
    const line = API1.split('\n').length + 1; // API1 ends with a newline, then an empty line, then the broken one
    expect(broken.kind === 'nodata' && broken.message).toBe(
      `API server metrics page is malformed: line ${line}: expected "," or "}" after label le of apiserver_request_total: "3"`,
    );
    clock.advance(15);
    expect(await scrape(s, API2)).toMatchObject({ kind: 'ok', windowSeconds: 30 });
  });

  it('refuses windows that are too short (keeping the baseline) or too long (new baseline)', async () => {
    const clock = new ManualClock();
    const s = source(clock);
    await scrape(s, API1);
    clock.advance(0.5);
    expect(await scrape(s, API1)).toMatchObject({ kind: 'nodata', message: expect.stringContaining('keeping the baseline') });
    clock.advance(29.5);
    expect(await scrape(s, API2)).toMatchObject({ kind: 'ok', windowSeconds: 30 });
    clock.advance(301);
    expect(await scrape(s, API2)).toMatchObject({ kind: 'nodata', message: expect.stringContaining('301 s old') });
    clock.advance(10);
    expect(await scrape(s, API2)).toMatchObject({ kind: 'ok', windowSeconds: 10 });
  });

  it('an HTTP error status is nodata: the API server answered', async () => {
    const s = source(new ManualClock());
    api.status = 403;
    api.page = '{"kind":"Status","message":"forbidden: cannot get path \\"/metrics\\""}';
    const m = await s.measure();
    expect(m.kind).toBe('nodata');
    expect(m.kind === 'nodata' && m.message).toContain('HTTP 403');
  });

  it('a page without API server metrics is nodata', async () => {
    const clock = new ManualClock();
    const s = source(clock);
    await scrape(s, DNS1);
    clock.advance(30);
    expect(await scrape(s, DNS2)).toMatchObject({ kind: 'nodata', message: expect.stringContaining('none of the expected metrics') });
  });

  it('a timeout is unreachable', async () => {
    const s = source(new ManualClock(), 200);
    api.hang = true;
    const m = await s.measure();
    api.hang = false;
    expect(m.kind).toBe('unreachable');
    expect(m.kind === 'unreachable' && m.message).toContain('timed out after 200 ms');
  });

  it('a refused connection is unreachable', async () => {
    const port = await closedPort();
    const s = new ApiServerMetricsSource(clusterClient(kubeconfigFor(`http://127.0.0.1:${port}`)), { clock: new ManualClock() });
    const m = await s.measure();
    expect(m.kind).toBe('unreachable');
    expect(m.kind === 'unreachable' && m.message).toContain('ECONNREFUSED');
  });

  it('a caller abort is nodata, not unreachable', async () => {
    const s = source(new ManualClock());
    api.hang = true;
    const controller = new AbortController();
    const pending = s.measure(controller.signal);
    setTimeout(() => controller.abort(), 30);
    const m = await pending;
    api.hang = false;
    expect(m).toMatchObject({ kind: 'nodata', message: 'measurement aborted' });
  });
});

describe('ApiServerMetricsSource with fake getters', () => {
  it('maps getter errors: unknown errors and TLS-like failures are nodata, never unreachable', async () => {
    const failing = (err: unknown): RawGetter => ({
      getRaw: async () => {
        throw err;
      },
    });
    const clock = new ManualClock();
    const kinds = await Promise.all(
      [
        new Error('boom'),
        new RawGetError('GET https://x/metrics: request failed: DEPTH_ZERO_SELF_SIGNED_CERT', 'DEPTH_ZERO_SELF_SIGNED_CERT'),
        new RawGetError('GET https://x/metrics: response failed: ECONNRESET', 'ECONNRESET'),
      ].map(async (err) => (await new ApiServerMetricsSource(failing(err), { clock }).measure()).kind),
    );
    expect(kinds).toEqual(['nodata', 'nodata', 'unreachable']);
  });

  it("recognises the production cluster client's failures: timeout and refusal are unreachable, HTTP errors and aborts are not", async () => {
    // KubeClusterClient.getRaw throws a ClusterRequestError whose cause is the controller's raw-GET error
    // (found on the real control plane: a SIGSTOPped API server was reported as "no data", not unreachable).
    const failing = (err: unknown): RawGetter => ({
      getRaw: async () => {
        throw err;
      },
    });
    const wrap = (cause: unknown, code?: number) =>
      new ClusterRequestError('east', 'GET /metrics', cause instanceof Error ? cause.message : `HTTP ${code}`, code, cause);
    const cases: Array<[string, unknown, Measurement['kind']]> = [
      ['timeout', wrap(new RawGetError('GET https://x/metrics: timed out after 10000 ms', 'ETIMEDOUT', 'TimeoutError')), 'unreachable'],
      ['refused', wrap(new RawGetError('GET https://x/metrics: request failed: ECONNREFUSED', 'ECONNREFUSED')), 'unreachable'],
      ['reset', wrap(new RawGetError('GET https://x/metrics: response failed: ECONNRESET', 'ECONNRESET')), 'unreachable'],
      ['aborted', wrap(new RawGetError('GET https://x/metrics: aborted', 'EABORTED', 'AbortError')), 'nodata'],
      ['forbidden', wrap(undefined, 403), 'nodata'],
      ['too big', wrap(new RawGetError('GET https://x/metrics: response larger than 1 bytes', 'ETOOBIG')), 'nodata'],
    ];
    const clock = new ManualClock();
    for (const [what, err, kind] of cases) {
      const m = await new ApiServerMetricsSource(failing(err), { clock }).measure();
      expect({ what, kind: m.kind }).toEqual({ what, kind });
      if (what === 'aborted') expect(m.kind !== 'ok' && m.message).toBe('measurement aborted');
      if (kind === 'unreachable') expect(m.kind !== 'ok' && m.message).toContain('GET https://x/metrics');
    }
  });

  it('serializes overlapping measurements', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const getter: RawGetter = {
      getRaw: async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
        return API1;
      },
    };
    const s = new ApiServerMetricsSource(getter);
    await Promise.all([s.measure(), s.measure(), s.measure()]);
    expect(maxInFlight).toBe(1);
  });
});

describe('TextEndpointSource (CoreDNS over HTTP)', () => {
  const dns = new PageServer();
  beforeAll(async () => {
    await dns.start();
  });
  afterAll(async () => {
    await dns.stop();
  });
  async function scrape(s: MetricSource, page: string): Promise<Measurement> {
    dns.page = page;
    dns.status = 200;
    dns.hang = false;
    return s.measure();
  }

  it('warms up, then measures CoreDNS signals', async () => {
    const clock = new ManualClock();
    const s = new TextEndpointSource(`${dns.url}/metrics`, { clock });
    expect(await scrape(s, DNS1)).toMatchObject({ kind: 'nodata', message: expect.stringContaining('warming up: first scrape of CoreDNS') });
    clock.advance(30);
    const m = await scrape(s, DNS2);
    expectValues(m, DNS_VALUES);
    expect(m).toMatchObject({ windowSeconds: 30, sampleCounts: { coreDNSErrorRatio: 2000, coreDNSP99Seconds: 2000, coreDNSRequestRate: 2000 } });
    expect(dns.requests.at(-1)?.url).toBe('/metrics');
    expect(dns.requests.at(-1)?.headers.accept).toContain('text/plain;version=0.0.4');
  });

  it('a restarted CoreDNS gives nodata for one window', async () => {
    const clock = new ManualClock();
    const s = new TextEndpointSource(`${dns.url}/metrics`, { clock });
    await scrape(s, DNS1);
    clock.advance(30);
    expect(await scrape(s, otherProcess(DNS1, '1.7641e+09'))).toMatchObject({ kind: 'nodata', message: 'CoreDNS restarted; new baseline' });
  });

  it('can compute other signals, e.g. the API server ones from a text endpoint', async () => {
    const clock = new ManualClock();
    const { apiServerSignals } = await import('./signals.js');
    const s = new TextEndpointSource(`${dns.url}/metrics`, { clock, compute: apiServerSignals, target: 'API server' });
    await scrape(s, API1);
    clock.advance(30);
    expectValues(await scrape(s, API2), API_VALUES);
  });

  it('HTTP errors, timeouts and a dead endpoint are all nodata (DNS trouble is not API server trouble)', async () => {
    const clock = new ManualClock();
    const s = new TextEndpointSource(`${dns.url}/metrics`, { clock, timeoutMs: 200 });
    dns.status = 500;
    dns.page = 'internal error';
    const http500 = await s.measure();
    expect(http500).toMatchObject({ kind: 'nodata', message: expect.stringContaining('HTTP 500') });

    dns.hang = true;
    const timedOut = await s.measure();
    dns.hang = false;
    expect(timedOut).toMatchObject({ kind: 'nodata', message: expect.stringContaining('no answer within 200 ms') });

    const port = await closedPort();
    const dead = await new TextEndpointSource(`http://127.0.0.1:${port}/metrics`, { clock }).measure();
    expect(dead.kind).toBe('nodata');
    expect(dead.kind === 'nodata' && dead.message).toContain('ECONNREFUSED');
  });

  it('sends credentials from the URL as Basic auth and never shows them', async () => {
    const withCredentials = dns.url.replace('http://', 'http://scraper:s3cret@');
    await scrape(new TextEndpointSource(`${withCredentials}/metrics`), DNS1);
    expect(dns.requests.at(-1)?.headers.authorization).toBe(`Basic ${Buffer.from('scraper:s3cret').toString('base64')}`);

    const port = await closedPort();
    const m = await new TextEndpointSource(`http://scraper:s3cret@127.0.0.1:${port}/metrics`).measure();
    expect(m.kind === 'nodata' && m.message).toContain(`http://127.0.0.1:${port}/metrics`);
    expect(JSON.stringify(m)).not.toContain('s3cret');
  });
});
