import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { KubeConfigRawGetter, RawGetError } from './rawget.js';

const cert = readFileSync(new URL('./testdata/test-server.crt', import.meta.url));
const key = readFileSync(new URL('./testdata/test-server.key', import.meta.url));
const TOKEN = 'test-token-not-a-secret';
const PAGE = '# TYPE up gauge\nup 1\n';

interface Seen {
  path?: string;
  authorization?: string;
  acceptEncoding?: string;
}

/** The handler shared by the HTTPS and HTTP servers: a tiny fake of an API server's non-resource paths. */
function handler(seen: Seen): http.RequestListener {
  return (req, res) => {
    seen.path = req.url;
    seen.authorization = req.headers.authorization;
    seen.acceptEncoding = req.headers['accept-encoding'];
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401).end('{"kind":"Status","message":"Unauthorized"}');
      return;
    }
    if (req.url?.endsWith('/forbidden')) {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end('{"kind":"Status","status":"Failure","message":"forbidden: User \\"system:serviceaccount:x:y\\" cannot get path \\"/forbidden\\"","reason":"Forbidden","code":403}');
      return;
    }
    if (req.url?.endsWith('/hang')) return; // never answers
    if (req.url?.endsWith('/huge')) {
      res.writeHead(200).end('x'.repeat(4096));
      return;
    }
    if (req.headers['accept-encoding']?.includes('gzip')) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-encoding': 'gzip' });
      res.end(gzipSync(PAGE));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(PAGE);
  };
}

function kubeconfig(server: string, cluster: Record<string, unknown>): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, ...cluster }],
    users: [{ name: 'u', token: TOKEN }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}

async function rawGetError(p: Promise<unknown>): Promise<RawGetError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RawGetError) return err;
    throw err;
  }
  throw new Error('expected a RawGetError');
}

describe('KubeConfigRawGetter', () => {
  const seen: Seen = {};
  let httpsServer: https.Server;
  let httpServer: http.Server;
  let httpsUrl = '';
  let httpUrl = '';

  beforeAll(async () => {
    httpsServer = https.createServer({ cert, key }, handler(seen));
    httpServer = http.createServer(handler(seen));
    await new Promise<void>((r) => httpsServer.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    httpsUrl = `https://127.0.0.1:${(httpsServer.address() as AddressInfo).port}`;
    httpUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    httpsServer.closeAllConnections();
    httpServer.closeAllConnections();
    await new Promise((r) => httpsServer.close(r));
    await new Promise((r) => httpServer.close(r));
  });

  const caData = (): Record<string, unknown> => ({ caData: cert.toString('base64') });

  it('GETs over HTTPS with the kubeconfig CA and token, keeping the server path prefix, gzip-decoded', async () => {
    const getter = new KubeConfigRawGetter(kubeconfig(`${httpsUrl}/k8s/clusters/c-1/`, caData()));
    await expect(getter.getRaw('/metrics')).resolves.toBe(PAGE);
    expect(seen.path).toBe('/k8s/clusters/c-1/metrics');
    expect(seen.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen.acceptEncoding).toBe('gzip');
  });

  it('works over plain HTTP when the kubeconfig skips TLS verification', async () => {
    const getter = new KubeConfigRawGetter(kubeconfig(httpUrl, { skipTLSVerify: true }));
    await expect(getter.getRaw('/metrics')).resolves.toBe(PAGE);
  });

  it('reports an HTTP error status as kind "http" with the Status message', async () => {
    const getter = new KubeConfigRawGetter(kubeconfig(httpsUrl, caData()));
    const err = await rawGetError(getter.getRaw('/forbidden'));
    expect(err.kind).toBe('http');
    expect(err.status).toBe(403);
    expect(err.message).toContain('GET /forbidden: HTTP 403');
    expect(err.message).toContain('cannot get path');
    expect(err.message).not.toContain(TOKEN);
  });

  it('times out as kind "timeout"', async () => {
    const getter = new KubeConfigRawGetter(kubeconfig(httpsUrl, caData()), { timeoutMs: 200 });
    const started = Date.now();
    const err = await rawGetError(getter.getRaw('/hang'));
    expect(err.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('reports the caller aborting as kind "aborted"', async () => {
    const getter = new KubeConfigRawGetter(kubeconfig(httpsUrl, caData()), { timeoutMs: 5000 });
    const controller = new AbortController();
    const pending = getter.getRaw('/hang', controller.signal);
    setTimeout(() => controller.abort(), 50);
    expect((await rawGetError(pending)).kind).toBe('aborted');
    controller.abort();
    expect((await rawGetError(getter.getRaw('/metrics', controller.signal))).kind).toBe('aborted');
  });

  it('reports a refused connection as kind "network"', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const getter = new KubeConfigRawGetter(kubeconfig(`https://127.0.0.1:${port}`, caData()));
    const err = await rawGetError(getter.getRaw('/metrics'));
    expect(err.kind).toBe('network');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('reports an untrusted certificate as kind "other", not "network"', async () => {
    const getter = new KubeConfigRawGetter(kubeconfig(httpsUrl, {}));
    expect((await rawGetError(getter.getRaw('/metrics'))).kind).toBe('other');
  });

  it('refuses a body larger than maxBytes', async () => {
    const getter = new KubeConfigRawGetter(kubeconfig(httpsUrl, caData()), { maxBytes: 1024 });
    const err = await rawGetError(getter.getRaw('/huge'));
    expect(err.kind).toBe('other');
    expect(err.message).toContain('larger than 1024 bytes');
  });

  it('fails clearly without a current cluster', async () => {
    const getter = new KubeConfigRawGetter(new KubeConfig());
    const err = await rawGetError(getter.getRaw('/metrics'));
    expect(err.kind).toBe('other');
    expect(err.message).toContain('no current cluster');
  });
});
