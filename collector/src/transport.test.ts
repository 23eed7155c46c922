import { afterEach, describe, it, expect } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { ClientNodeTransport, buildQuery } from './transport.js';
import { NetworkError } from './errors.js';
import { waitFor } from './testing/fakeclock.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let server: http.Server | undefined;
afterEach(async () => {
  const s = server;
  server = undefined;
  if (s) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** A tiny HTTP "API server" on 127.0.0.1 that records requests and answers with `handler`. */
async function fakeApiServer(handler: (req: Seen, res: http.ServerResponse) => void): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // client-node refuses plain http unless TLS verification is explicitly off.
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'secret-token-123' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}

async function text(body: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

describe('ClientNodeTransport (client-node auth + undici over real HTTP)', () => {
  it('sends method, path, query, JSON body, bearer token and our User-Agent; streams the response', async () => {
    const api = await fakeApiServer((_req, res) => {
      res.writeHead(201, { 'Content-Type': 'application/json', 'X-Test': 'yes' });
      res.end('{"ok":true}');
    });
    const t = new ClientNodeTransport(kubeConfigFor(api.url), 'telemetry-collector/test (mode=node)');
    const res = await t.send({
      method: 'POST',
      path: '/apis/coordination.k8s.io/v1/namespaces/ns/leases',
      query: { fieldManager: 'x', dryRun: undefined },
      body: { kind: 'Lease' },
      signal: new AbortController().signal,
    });
    expect(res.status).toBe(201);
    expect(res.headers['x-test']).toBe('yes');
    expect(await text(res.body)).toBe('{"ok":true}');
    const req = api.seen[0];
    expect(req?.method).toBe('POST');
    expect(req?.url).toBe('/apis/coordination.k8s.io/v1/namespaces/ns/leases?fieldManager=x');
    expect(req?.headers.authorization).toBe('Bearer secret-token-123');
    expect(req?.headers['user-agent']).toBe('telemetry-collector/test (mode=node)');
    expect(req?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req?.body ?? '')).toEqual({ kind: 'Lease' });
  });

  it('aborts a request whose response never comes, with the abort reason', async () => {
    const api = await fakeApiServer(() => undefined); // never answers
    const t = new ClientNodeTransport(kubeConfigFor(api.url), 'ua');
    const ac = new AbortController();
    const p = t.send({ method: 'GET', path: '/api/v1/pods', signal: ac.signal });
    await waitFor(() => api.seen.length > 0, 5000, 'request at the server');
    ac.abort(new Error('stop file'));
    await expect(p).rejects.toThrow('stop file');
  });

  it('aborts a streaming body mid-way (watch)', async () => {
    const api = await fakeApiServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"ADDED","object":{}}\n'); // and keep the stream open
    });
    const t = new ClientNodeTransport(kubeConfigFor(api.url), 'ua');
    const ac = new AbortController();
    const res = await t.send({ method: 'GET', path: '/api/v1/pods', query: { watch: 'true' }, signal: ac.signal });
    const it = res.body[Symbol.asyncIterator]();
    const first = await it.next();
    expect(Buffer.from(first.value as Uint8Array).toString()).toContain('ADDED');
    const pending = it.next();
    ac.abort(new Error('kill switch'));
    await expect(pending).rejects.toThrow('kill switch');
  });

  it('reports a refused connection as a NetworkError without leaking the token', async () => {
    const t = new ClientNodeTransport(kubeConfigFor('http://127.0.0.1:1'), 'ua');
    const err = await t.send({ method: 'GET', path: '/api/v1/nodes/n', signal: new AbortController().signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect(String((err as Error).message)).not.toContain('secret-token');
  });

  it('buildQuery omits undefined values', () => {
    expect(buildQuery({ a: '1', b: undefined, c: 'x y' })).toBe('?a=1&c=x+y');
    expect(buildQuery({})).toBe('');
  });
});
