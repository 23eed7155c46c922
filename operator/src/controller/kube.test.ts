import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { ApiException, CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { RawGetError, isConflict, isGone, isNotFound, isRetryable, rawGet, requestOptions, retryAfterMs, statusCode, withRetry } from './kube.js';

const api = (code: number, headers: Record<string, string> = {}, body: unknown = {}): ApiException<unknown> => new ApiException(code, 'message', body, headers);

describe('error classification', () => {
  it('reads status codes from ApiException and numeric code/statusCode fields', () => {
    expect(statusCode(api(404))).toBe(404);
    expect(statusCode({ statusCode: 410 })).toBe(410);
    expect(statusCode(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBeUndefined();
    expect(isNotFound(api(404))).toBe(true);
    expect(isConflict(api(409))).toBe(true);
    expect(isGone({ code: 410 })).toBe(true);
    expect(isNotFound(api(409))).toBe(false);
  });

  it.each<[string, boolean, unknown]>([
    ['429', true, api(429)],
    ['500', true, api(500)],
    ['503', true, api(503)],
    ['504', true, api(504)],
    ['408', true, api(408)],
    ['501 not implemented', false, api(501)],
    ['400', false, api(400)],
    ['403', false, api(403)],
    ['404', false, api(404)],
    ['409', false, api(409)],
    ['ECONNRESET', true, Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['fetch failed(ECONNREFUSED)', true, new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) })],
    ['undici connect timeout', true, new TypeError('fetch failed', { cause: { code: 'UND_ERR_CONNECT_TIMEOUT' } })],
    ['TimeoutError', true, new DOMException('timed out', 'TimeoutError')],
    ['AbortError', false, new DOMException('aborted', 'AbortError')],
    ['plain error', false, new Error('boom')],
    ['string', false, 'boom'],
  ])('isRetryable(%s) is %s', (_name, want, err) => {
    expect(isRetryable(err)).toBe(want);
  });

  it('parses Retry-After as seconds, HTTP date, or Status details', () => {
    const now = new Date('2026-11-25T10:00:00Z');
    expect(retryAfterMs(api(429, { 'retry-after': '7' }), now)).toBe(7000);
    expect(retryAfterMs(api(429, { 'Retry-After': 'Wed, 25 Nov 2026 10:00:30 GMT' }), now)).toBe(30_000);
    expect(retryAfterMs(api(429, {}, { kind: 'Status', details: { retryAfterSeconds: 3 } }), now)).toBe(3000);
    expect(retryAfterMs(api(429, {}, '{"details":{"retryAfterSeconds":2}}'), now)).toBe(2000);
    expect(retryAfterMs(api(429, {}, 'not json'), now)).toBeUndefined();
    expect(retryAfterMs(api(500), now)).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });
});

describe('withRetry', () => {
  it('retries retryable errors with backoff on the clock and honours a longer Retry-After', async () => {
    const clock = new FakeClock(0);
    const delays: number[] = [];
    let calls = 0;
    const p = withRetry(
      async () => {
        calls++;
        if (calls === 1) throw api(503);
        if (calls === 2) throw api(429, { 'retry-after': '7' });
        return 'ok';
      },
      { clock, random: () => 0, onRetry: ({ delayMs }) => delays.push(delayMs) },
    );
    await clock.advance(199);
    expect(calls).toBe(1);
    await clock.advance(1);
    expect(calls).toBe(2);
    await clock.advance(6999);
    expect(calls).toBe(2);
    await clock.advance(1);
    await expect(p).resolves.toBe('ok');
    expect(delays).toEqual([200, 7000]);
  });

  it('caps an absurd Retry-After and applies jitter to the backoff', async () => {
    const clock = new FakeClock(0);
    const delays: number[] = [];
    let calls = 0;
    const p = withRetry(
      async () => {
        if (++calls === 1) throw api(429, { 'retry-after': '86400' });
        if (calls === 2) throw api(500);
        return calls;
      },
      { clock, random: () => 0.5, minDelayMs: 100, maxRetryAfterMs: 10_000, onRetry: ({ delayMs }) => delays.push(delayMs) },
    );
    await clock.advance(20_000);
    await expect(p).resolves.toBe(3);
    expect(delays).toEqual([10_000, 250]);
  });

  it('rethrows a non-retryable error at once and the last error when retries run out', async () => {
    const clock = new FakeClock(0);
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw api(403);
        },
        { clock },
      ),
    ).rejects.toMatchObject({ code: 403 });
    expect(calls).toBe(1);

    calls = 0;
    const p = withRetry(
      async () => {
        calls++;
        throw api(500);
      },
      { clock, retries: 2, random: () => 0 },
    );
    const settled = p.catch((e: unknown) => e);
    await clock.advance(10_000);
    expect(await settled).toMatchObject({ code: 500 });
    expect(calls).toBe(3);
  });

  it('stops waiting when the signal aborts', async () => {
    const clock = new FakeClock(0);
    const ac = new AbortController();
    const p = withRetry(
      async () => {
        throw api(503);
      },
      { clock, signal: ac.signal },
    );
    const settled = p.catch((e: unknown) => e);
    await clock.flush();
    ac.abort(new Error('shutting down'));
    expect(await settled).toMatchObject({ message: 'shutting down' });
  });
});

describe('requestOptions with a real typed API call', () => {
  let server: http.Server;
  let kc: KubeConfig;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url?.startsWith('/apis/coordination.k8s.io/v1/namespaces/ns/leases/ok')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: 'ok', namespace: 'ns', resourceVersion: '5' },
            spec: { holderIdentity: 'a' },
          }),
        );
      }
      // Anything else hangs: only the signal can end the call.
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    kc = new KubeConfig();
    kc.loadFromClusterAndUser(
      { name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
      { name: 'u', token: 't' },
    );
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('passes through a call that completes', async () => {
    const api = kc.makeApiClient(CoordinationV1Api);
    const lease = await api.readNamespacedLease({ name: 'ok', namespace: 'ns' }, requestOptions(new AbortController().signal));
    expect(lease.spec?.holderIdentity).toBe('a');
  });

  it('aborts a hanging call when the signal aborts', async () => {
    const api = kc.makeApiClient(CoordinationV1Api);
    const ac = new AbortController();
    const call = api.readNamespacedLease({ name: 'hang', namespace: 'ns' }, requestOptions(ac.signal));
    ac.abort(new Error('deadline'));
    await expect(call).rejects.toThrow();
  });
});

describe('rawGet', () => {
  const TOKEN = 'sekrit-token-0123456789';
  // A self-signed certificate for 127.0.0.1, TEST ONLY (testkit/operator/controller/testdata/README.md).
  const cert = readFileSync(new URL('../../../testkit/operator/controller/testdata/test-server.crt', import.meta.url));
  const key = readFileSync(new URL('../../../testkit/operator/controller/testdata/test-server.key', import.meta.url));
  let server: http.Server;
  let tls: https.Server;
  let base: string;
  let tlsBase: string;
  const seen: Array<{ url?: string; authorization?: string }> = [];

  const handler: http.RequestListener = (req, res) => {
    seen.push({ url: req.url, authorization: req.headers.authorization });
    if (req.url === '/readyz?verbose') {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('[-]etcd failed: reason withheld\nreadyz check failed\n');
    } else if (req.url === '/hang') {
      // Never answers: the client must time out or abort.
    } else if (req.url === '/big') {
      res.end('x'.repeat(2048));
    } else {
      res.end('# HELP up\nup 1\n');
    }
  };

  /** Starts `s` on a free loopback port and returns its base URL. */
  async function listen(s: http.Server, scheme: 'http' | 'https'): Promise<string> {
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return `${scheme}://127.0.0.1:${(s.address() as AddressInfo).port}`;
  }

  beforeAll(async () => {
    server = http.createServer(handler);
    tls = https.createServer({ cert, key }, handler);
    base = await listen(server, 'http');
    tlsBase = await listen(tls, 'https');
  });

  afterAll(async () => {
    for (const s of [server, tls]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  /** A kubeconfig for `server` with the token; `cluster` says how TLS is verified (by default, not at all). */
  function kubeconfig(server: string, cluster: Record<string, unknown> = { 'insecure-skip-tls-verify': true }): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server, ...cluster } }],
        users: [{ name: 'u', user: { token: TOKEN } }],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'ctx',
      }),
    );
    return kc;
  }

  it('sends the kubeconfig credentials and returns status and body', async () => {
    const res = await rawGet(kubeconfig(base), '/metrics', { timeoutMs: 5000 });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('up 1');
    expect(seen.at(-1)).toEqual({ url: '/metrics', authorization: `Bearer ${TOKEN}` });
  });

  it('resolves non-2xx statuses with their body', async () => {
    const res = await rawGet(kubeconfig(base), '/readyz?verbose', { timeoutMs: 5000 });
    expect(res.statusCode).toBe(500);
    expect(res.body).toContain('[-]etcd failed');
  });

  it('keeps credentials out of transport errors', async () => {
    // A port nothing listens on: bind, note, close.
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await rawGet(kubeconfig(`http://127.0.0.1:${port}`), '/livez', { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RawGetError);
    expect((err as RawGetError).code).toBe('ECONNREFUSED');
    const everything = JSON.stringify(err, Object.getOwnPropertyNames(err));
    expect(everything).not.toContain(TOKEN);
    expect((err as Error).cause).toBeUndefined();
  });

  it('times out, aborts and refuses oversized bodies with distinct codes', async () => {
    const kc = kubeconfig(base);
    await expect(rawGet(kc, '/hang', { timeoutMs: 20 })).rejects.toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
    const ac = new AbortController();
    const pending = rawGet(kc, '/hang', { timeoutMs: 60_000, signal: ac.signal });
    ac.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError', code: 'EABORTED' });
    await expect(rawGet(kc, '/big', { timeoutMs: 5000, maxBytes: 1024 })).rejects.toMatchObject({ code: 'ETOOBIG' });
  });

  it('fails clearly without a current cluster', async () => {
    await expect(rawGet(new KubeConfig(), '/livez', { timeoutMs: 10 })).rejects.toMatchObject({ code: 'ENOCLUSTER' });
  });

  it('over HTTPS: verifies the server with the kubeconfig CA, sends the token and keeps the server URL path prefix', async () => {
    // A proxied API server (e.g. Rancher's /k8s/clusters/<id>/) serves its non-resource paths under the prefix.
    const kc = kubeconfig(`${tlsBase}/k8s/clusters/c-1/`, { 'certificate-authority-data': cert.toString('base64') });
    const res = await rawGet(kc, '/metrics', { timeoutMs: 5000 });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('up 1');
    expect(seen.at(-1)).toEqual({ url: '/k8s/clusters/c-1/metrics', authorization: `Bearer ${TOKEN}` });
  });

  it('over HTTPS: fails an untrusted certificate with its TLS code, not a connection-level one, and no credentials', async () => {
    const err = await rawGet(kubeconfig(tlsBase, {}), '/metrics', { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RawGetError);
    expect((err as RawGetError).code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(TOKEN);
  });
});

describe('wrapped errors', () => {
  it('keep their status and Retry-After through a cause chain', () => {
    const wrapped = new Error('replace Lease ns/x', { cause: api(409) });
    expect(isConflict(wrapped)).toBe(true);
    const throttled = new Error('list nodes', { cause: api(429, { 'retry-after': '4' }) });
    expect(isRetryable(throttled)).toBe(true);
    expect(retryAfterMs(throttled)).toBe(4000);
  });
});
