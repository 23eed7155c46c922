import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEFAULT_PROMQL, PrometheusSource, renderQuery } from './prometheus.js';
import { ManualClock, PageServer, closedPort } from '../../../testkit/operator/gates/sources.js';

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
    answers.set(renderQuery(DEFAULT_PROMQL.coreDNSP99Seconds, 60), {
      status: 200,
      body: { status: 'success', data: { resultType: 'scalar', result: [ts, '0.0031'] } },
    });
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
    expect(m.kind === 'nodata' && m.message).toMatch(
      new RegExp(`^Prometheus at http://127\\.0\\.0\\.1:${port}/: .*ECONNREFUSED.*\\(and 7 more failed queries\\)$`),
    );
    expect(JSON.stringify(m)).not.toContain('pw');
  });

  it('renders fractional windows in milliseconds', () => {
    expect(renderQuery('rate(x[$window]) / rate(y[$window])', 12.5)).toBe('rate(x[12500ms]) / rate(y[12500ms])');
  });

  it('rejects a non-positive window at construction', () => {
    expect(() => new PrometheusSource({ url: 'http://127.0.0.1:9090', windowSeconds: 0 })).toThrow(RangeError);
  });
});
