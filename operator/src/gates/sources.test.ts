import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClusterRequestError } from '../cluster/kubeapi.js';
import { KubeClusterClient } from '../cluster/kubeclient.js';
import { RawGetError } from '../controller/kube.js';
import { DEFAULT_PROMQL, PrometheusSource, renderQuery } from './prometheus.js';
import { ApiServerMetricsSource, TextEndpointSource, type RawGetter } from './scrape.js';
import type { Measurement, MetricSource } from './sources.js';
import { CompositeSource } from './sources.js';

function fixture(name: string): string {
  return readFileSync(new URL(`../../../testkit/operator/gates/testdata/${name}`, import.meta.url), 'utf8');
}
const API1 = fixture('kube-apiserver-metrics-1.txt');
const API2 = fixture('kube-apiserver-metrics-2.txt');
const DNS1 = fixture('coredns-metrics-1.txt');
const DNS2 = fixture('coredns-metrics-2.txt');

/** The same page from a process that started at another time (a restart, or another replica). */
function otherProcess(page: string, startTime: string): string {
  const replaced = page.replace(/^process_start_time_seconds .*$/m, `process_start_time_seconds ${startTime}`);
  if (replaced === page) throw new Error('fixture has no process_start_time_seconds');
  return replaced;
}

/** The values the fixtures were designed to give over their 30 s window (see signals.test.ts). */
const API_VALUES = {
  apiServerP99Seconds: 0.6 + 0.2 / 3,
  apiServerErrorRatio: 0.01,
  apiServerRequestRate: 1000 / 30,
  apiServerListRate: 3,
  apfRejectionsPerSecond: 0.2,
};
const DNS_VALUES = { coreDNSErrorRatio: 0.02, coreDNSP99Seconds: 0.002 + 0.002 / 3, coreDNSRequestRate: 2000 / 30 };

function expectValues(m: Measurement, expected: Record<string, number>): void {
  if (m.kind !== 'ok') throw new Error(`expected ok, got ${m.kind}: ${m.message}`);
  expect(Object.keys(m.values).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, value] of Object.entries(expected)) {
    expect(m.values[name as keyof typeof m.values]).toBeCloseTo(value, 10);
  }
}

/** A fake clock the test moves by hand. */
class ManualClock {
  t = Date.parse('2026-11-25T10:00:00Z');
  now(): Date {
    return new Date(this.t);
  }
  advance(seconds: number): void {
    this.t += seconds * 1000;
  }
}

/** A local HTTP server whose answer the test sets: a page, a status, or silence. */
class PageServer {
  readonly server: http.Server;
  page = '';
  status = 200;
  hang = false;
  readonly requests: { url: string; headers: http.IncomingHttpHeaders }[] = [];
  url = '';

  constructor(handler?: http.RequestListener) {
    this.server = http.createServer(
      handler ??
        ((req, res) => {
          this.requests.push({ url: req.url ?? '', headers: req.headers });
          if (this.hang) return;
          res.writeHead(this.status, { 'content-type': 'text/plain; version=0.0.4' }).end(this.page);
        }),
    );
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function kubeconfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}

/** The production getter: the cluster client's raw GET through `kubeconfig`. */
function clusterClient(kc: KubeConfig, timeoutMs?: number): RawGetter {
  return new KubeClusterClient('c', kc, timeoutMs === undefined ? {} : { timeoutMs });
}

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
      ].map(
        async (err) => (await new ApiServerMetricsSource(failing(err), { clock }).measure()).kind,
      ),
    );
    expect(kinds).toEqual(['nodata', 'nodata', 'unreachable']);
  });

  it('recognises the production cluster client\'s failures: timeout and refusal are unreachable, HTTP errors and aborts are not', async () => {
    // KubeClusterClient.getRaw throws a ClusterRequestError whose cause is the controller's raw-GET error
    // (found on the real control plane: a SIGSTOPped API server was reported as "no data", not unreachable).
    const failing = (err: unknown): RawGetter => ({
      getRaw: async () => {
        throw err;
      },
    });
    const wrap = (cause: unknown, code?: number) => new ClusterRequestError('east', 'GET /metrics', cause instanceof Error ? cause.message : `HTTP ${code}`, code, cause);
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

describe('PrometheusSource (fake Prometheus HTTP API)', () => {
  /** Answers by exact query text; unknown queries get an empty vector. */
  const answers = new Map<string, { status: number; body: unknown }>();
  const seen: { path: string; query: string; authorization?: string }[] = [];
  const prom = new PageServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = url.searchParams.get('query') ?? '';
    seen.push({ path: url.pathname, query, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    const answer = answers.get(query) ?? { status: 200, body: { status: 'success', data: { resultType: 'vector', result: [] } } };
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
  });
  beforeAll(async () => {
    await prom.start();
  });
  afterAll(async () => {
    await prom.stop();
  });

  const ts = 1764064800.123;
  const vector = (...values: string[]): { status: number; body: unknown } => ({
    status: 200,
    body: { status: 'success', data: { resultType: 'vector', result: values.map((v, i) => ({ metric: { instance: `i${i}` }, value: [ts, v] })) } },
  });

  it('renders $window and runs the default queries, mapping results to signals', async () => {
    answers.clear();
    seen.length = 0;
    answers.set(renderQuery(DEFAULT_PROMQL.apiServerP99Seconds, 60), vector('0.4321'));
    answers.set(renderQuery(DEFAULT_PROMQL.apiServerErrorRatio, 60), vector('0.0125'));
    answers.set(renderQuery(DEFAULT_PROMQL.apiServerRequestRate, 60), vector('812.5'));
    answers.set(renderQuery(DEFAULT_PROMQL.apfRejectionsPerSecond, 60), vector('0'));
    answers.set(renderQuery(DEFAULT_PROMQL.coreDNSErrorRatio, 60), vector('NaN')); // no DNS traffic: 0/0
    answers.set(renderQuery(DEFAULT_PROMQL.coreDNSP99Seconds, 60), { status: 200, body: { status: 'success', data: { resultType: 'scalar', result: [ts, '0.0031'] } } });
    const clock = new ManualClock();
    const s = new PrometheusSource({ url: `${prom.url}/prom/`, windowSeconds: 60, clock, headers: { Authorization: 'Bearer prom-token' } });
    const m = await s.measure();
    expect(m).toEqual({
      kind: 'ok',
      at: clock.now(),
      windowSeconds: 60,
      values: { apiServerP99Seconds: 0.4321, apiServerErrorRatio: 0.0125, apiServerRequestRate: 812.5, apfRejectionsPerSecond: 0, coreDNSP99Seconds: 0.0031 },
    });
    expect(seen).toHaveLength(8);
    expect(seen.every((r) => r.path === '/prom/api/v1/query' && r.authorization === 'Bearer prom-token')).toBe(true);
    expect(seen.map((r) => r.query)).toContain(
      'histogram_quantile(0.99, sum by (le) (rate(apiserver_request_duration_seconds_bucket{verb!~"WATCH|WATCHLIST|CONNECT",subresource!~"exec|attach|portforward|proxy|log"}[60s])))',
    );
    expect(seen.some((r) => r.query.includes('$window'))).toBe(false);
  });

  it('takes the largest value of several series and says so', async () => {
    answers.clear();
    answers.set('max_test', vector('0.2', '0.9', '0.5'));
    const s = new PrometheusSource({ url: prom.url, windowSeconds: 30, queries: { apiServerP99Seconds: 'max_test' } });
    const m = await s.measure();
    expect(m.kind === 'ok' && m.values.apiServerP99Seconds).toBe(0.9);
    expect(m.kind === 'ok' && m.message).toContain('apiServerP99Seconds: 3 series, used the largest');
  });

  it('honours overrides and disabled signals', async () => {
    answers.clear();
    seen.length = 0;
    answers.set('custom{window="90s"}', vector('7'));
    const queries = Object.fromEntries(Object.keys(DEFAULT_PROMQL).map((k) => [k, null]));
    const s = new PrometheusSource({ url: prom.url, windowSeconds: 90, queries: { ...queries, coreDNSRequestRate: 'custom{window="$window"}' } });
    expect(s.queries).toEqual([['coreDNSRequestRate', 'custom{window="90s"}']]);
    const m = await s.measure();
    expect(m).toMatchObject({ kind: 'ok', values: { coreDNSRequestRate: 7 }, windowSeconds: 90 });
    expect(seen.map((r) => r.query)).toEqual(['custom{window="90s"}']);
  });

  it('a failing query leaves its signal undefined with the Prometheus error in the message', async () => {
    answers.clear();
    answers.set('good', vector('1.5'));
    answers.set('bad(', { status: 400, body: { status: 'error', errorType: 'bad_data', error: '1:5: parse error: unclosed left parenthesis' } });
    const s = new PrometheusSource({
      url: prom.url,
      windowSeconds: 30,
      queries: { ...Object.fromEntries(Object.keys(DEFAULT_PROMQL).map((k) => [k, null])), apiServerP99Seconds: 'good', apiServerErrorRatio: 'bad(' },
    });
    const m = await s.measure();
    expect(m).toMatchObject({ kind: 'ok', values: { apiServerP99Seconds: 1.5 } });
    expect(m.kind === 'ok' && m.message).toBe('failed queries: apiServerErrorRatio: HTTP 400: bad_data: 1:5: parse error: unclosed left parenthesis');
  });

  it('Prometheus down is nodata, never unreachable, and hides credentials', async () => {
    const port = await closedPort();
    const s = new PrometheusSource({ url: `http://admin:pw@127.0.0.1:${port}`, windowSeconds: 30 });
    const m = await s.measure();
    expect(m.kind).toBe('nodata');
    expect(m.kind === 'nodata' && m.message).toMatch(new RegExp(`^Prometheus at http://127\\.0\\.0\\.1:${port}/: .*ECONNREFUSED.*\\(and 7 more failed queries\\)$`));
    expect(JSON.stringify(m)).not.toContain('pw');
  });

  it('renders fractional windows in milliseconds', () => {
    expect(renderQuery('rate(x[$window]) / rate(y[$window])', 12.5)).toBe('rate(x[12500ms]) / rate(y[12500ms])');
  });

  it('rejects a non-positive window at construction', () => {
    expect(() => new PrometheusSource({ url: 'http://127.0.0.1:9090', windowSeconds: 0 })).toThrow(RangeError);
  });
});

describe('CompositeSource', () => {
  const at = (s: number): Date => new Date(Date.parse('2026-11-25T10:00:00Z') + s * 1000);
  const fixed = (m: Measurement): MetricSource => ({ measure: async () => m });

  it('merges the values of ok parts, with the longest window', async () => {
    const m = await new CompositeSource([
      { name: 'apiserver', source: fixed({ kind: 'ok', at: at(1), windowSeconds: 10, values: { apiServerP99Seconds: 0.3 }, sampleCounts: { apiServerP99Seconds: 400 } }) },
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
    expect(m).toEqual({ kind: 'ok', at: at(1), windowSeconds: 10, values: { apiServerErrorRatio: 0 }, message: 'coredns: no data: cannot scrape CoreDNS: HTTP 500' });
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
