import { afterAll, afterEach, beforeAll, describe, it, expect } from '@jest/globals';
import http from 'node:http';
import https from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import zlib from 'node:zlib';
import { HttpTransport, buildQuery, type KubeResponse } from './transport.js';
import { NetworkError } from './errors.js';
import { FileTokenSource, StaticTokenSource, type ApiServerConfig } from '#core/kubeconfig.js';
import { waitFor } from '../../testkit/core/fakeclock.js';
import { selfSignedCert, type TestCert } from '../../testkit/core/tls.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  clientCN: string | undefined;
}

let dir: string;
let serverCert: TestCert;
let namedCert: TestCert;
let clientCert: TestCert;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'transport-test-'));
  serverCert = selfSignedCert(dir, 'server', 'apiserver', 'IP:127.0.0.1,DNS:localhost');
  namedCert = selfSignedCert(dir, 'named', 'apiserver', 'DNS:apiserver.test');
  clientCert = selfSignedCert(dir, 'client', 'node-agent', 'DNS:node-agent');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let server: http.Server | undefined;
const transports: HttpTransport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  const s = server;
  server = undefined;
  if (s) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/**
 * A tiny HTTPS "API server" on 127.0.0.1 that records requests (and the client certificate's CN when
 * `requestCert`) and answers with `handler`; `connections` counts TCP connections.
 */
async function fakeApiServer(
  handler: (req: Seen, res: http.ServerResponse) => void,
  o: { cert?: TestCert; requestCert?: boolean; plain?: boolean } = {},
): Promise<{ url: string; seen: Seen[]; connections: () => number }> {
  const seen: Seen[] = [];
  let connections = 0;
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const cn: unknown = o.requestCert ? (req.socket as TLSSocket).getPeerCertificate().subject?.CN : undefined;
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, clientCN: typeof cn === 'string' ? cn : undefined };
      seen.push(s);
      handler(s, res);
    });
  };
  const cert = o.cert ?? serverCert;
  server = o.plain
    ? http.createServer(onRequest)
    : https.createServer(
        { cert: cert.cert, key: cert.key, ...(o.requestCert ? { requestCert: true, rejectUnauthorized: true, ca: clientCert.cert } : {}) },
        onRequest,
      );
  server.on('connection', (_s: Socket) => connections++);
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { url: `${o.plain ? 'http' : 'https'}://127.0.0.1:${port}`, seen, connections: () => connections };
}

function configFor(url: string, extra: Partial<ApiServerConfig> = {}): ApiServerConfig {
  return { server: url, ca: serverCert.cert, insecureSkipTLSVerify: false, token: new StaticTokenSource('secret-token-123'), source: 'test', ...extra };
}

function transport(cfg: ApiServerConfig, o: ConstructorParameters<typeof HttpTransport>[2] = {}): HttpTransport {
  const t = new HttpTransport(cfg, 'telemetry-collector/test (mode=node)', o);
  transports.push(t);
  return t;
}

async function text(body: AsyncIterable<Uint8Array>): Promise<{ text: string; bytes: number }> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const c of body) {
    chunks.push(c);
    bytes += c.length;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), bytes };
}

const get = (t: HttpTransport, p = '/api/v1/nodes/n', signal = new AbortController().signal): Promise<KubeResponse> =>
  t.send({ method: 'GET', path: p, signal });

describe('HttpTransport over real HTTPS', () => {
  it('sends method, path, query, JSON body, bearer token and our User-Agent; verifies the server by the CA; streams the response', async () => {
    const api = await fakeApiServer((_req, res) => {
      res.writeHead(201, { 'Content-Type': 'application/json', 'X-Test': 'yes' });
      res.end('{"ok":true}');
    });
    const t = transport(configFor(api.url));
    const res = await t.send({
      method: 'POST',
      path: '/apis/coordination.k8s.io/v1/namespaces/ns/leases',
      query: { fieldManager: 'x', dryRun: undefined },
      body: { kind: 'Lease' },
      signal: new AbortController().signal,
    });
    expect(res.status).toBe(201);
    expect(res.headers['x-test']).toBe('yes');
    expect(await text(res.body)).toEqual({ text: '{"ok":true}', bytes: 11 });
    const req = api.seen[0];
    expect(req?.method).toBe('POST');
    expect(req?.url).toBe('/apis/coordination.k8s.io/v1/namespaces/ns/leases?fieldManager=x');
    expect(req?.headers.authorization).toBe('Bearer secret-token-123');
    expect(req?.headers['user-agent']).toBe('telemetry-collector/test (mode=node)');
    expect(req?.headers['content-type']).toBe('application/json');
    expect(req?.headers.accept).toBe('application/json');
    expect(JSON.parse(req?.body ?? '')).toEqual({ kind: 'Lease' });
  });

  it('keeps the connection alive across requests and never opens more than maxSockets', async () => {
    const hold: http.ServerResponse[] = [];
    const api = await fakeApiServer((req, res) => {
      if (req.url.includes('watch')) {
        res.writeHead(200);
        res.write('\n');
        hold.push(res);
      } else {
        res.end('{}');
      }
    });
    const t = transport(configFor(api.url), { maxSockets: 2 });
    for (let i = 0; i < 3; i++) await text((await get(t)).body);
    expect(api.connections()).toBe(1);
    // Two watches hold both sockets: a third request waits for one of them instead of opening a third.
    const ac = new AbortController();
    await Promise.all([get(t, '/api/v1/pods?watch', ac.signal), get(t, '/api/v1/services?watch', ac.signal)]);
    const third = get(t);
    await new Promise((r) => setTimeout(r, 200));
    expect(api.connections()).toBe(2);
    expect(api.seen).toHaveLength(5);
    ac.abort(new Error('done watching'));
    expect((await third).status).toBe(200);
    for (const r of hold) r.destroy();
  });

  it('rejects a server certificate it cannot verify with a NetworkError, unless insecure-skip-tls-verify', async () => {
    const api = await fakeApiServer((_req, res) => res.end('{}'));
    const untrusted = transport(configFor(api.url, { ca: clientCert.cert }));
    const err = await get(untrusted).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as Error).message).not.toContain('secret-token');
    const { ca: _ca, ...noCa } = configFor(api.url);
    const insecure = transport({ ...noCa, insecureSkipTLSVerify: true });
    expect((await get(insecure)).status).toBe(200);
  });

  it('verifies against tls-server-name instead of the URL host', async () => {
    const api = await fakeApiServer((_req, res) => res.end('{}'), { cert: namedCert });
    const byHost = transport(configFor(api.url, { ca: namedCert.cert }));
    await expect(get(byHost)).rejects.toBeInstanceOf(NetworkError);
    const byName = transport(configFor(api.url, { ca: namedCert.cert, tlsServerName: 'apiserver.test' }));
    expect((await get(byName)).status).toBe(200);
  });

  it('authenticates with a client certificate (and no token)', async () => {
    const api = await fakeApiServer((_req, res) => res.end('{}'), { requestCert: true });
    const { token: _t, ...noToken } = configFor(api.url);
    const t = transport({ ...noToken, cert: clientCert.cert, key: clientCert.key });
    expect((await get(t)).status).toBe(200);
    expect(api.seen[0]?.clientCN).toBe('node-agent');
    expect(api.seen[0]?.headers.authorization).toBeUndefined();
  });

  it('asks the token source on every request, so a rotated token file is picked up', async () => {
    const api = await fakeApiServer((_req, res) => res.end('{}'));
    const file = path.join(dir, 'token');
    writeFileSync(file, 'token-one\n');
    const t = transport(configFor(api.url, { token: new FileTokenSource(file, { refreshMs: 0 }) }));
    await text((await get(t)).body);
    writeFileSync(file, 'token-two\n');
    await text((await get(t)).body);
    expect(api.seen.map((s) => s.headers.authorization)).toEqual(['Bearer token-one', 'Bearer token-two']);
  });

  it('asks for gzip and yields the decompressed JSON (what the byte counters counted with fetch)', async () => {
    const json = JSON.stringify({ items: Array.from({ length: 2000 }, (_, i) => ({ name: `pod-${i}` })) });
    const api = await fakeApiServer((req, res) => {
      expect(req.headers['accept-encoding']).toBe('gzip');
      res.writeHead(200, { 'Content-Encoding': 'gzip' });
      res.end(zlib.gzipSync(json));
    });
    const t = transport(configFor(api.url));
    expect(await text((await get(t)).body)).toEqual({ text: json, bytes: Buffer.byteLength(json) });
  });

  it('aborts a request whose response never comes, with the abort reason', async () => {
    const api = await fakeApiServer(() => undefined); // never answers
    const t = transport(configFor(api.url));
    const ac = new AbortController();
    const p = get(t, '/api/v1/pods', ac.signal);
    await waitFor(() => api.seen.length > 0, 5000, 'request at the server');
    ac.abort(new Error('stop file'));
    await expect(p).rejects.toThrow('stop file');
  });

  it('rejects at once with the reason of an already aborted signal, sending nothing', async () => {
    const api = await fakeApiServer((_req, res) => res.end('{}'));
    const t = transport(configFor(api.url));
    await expect(get(t, '/x', AbortSignal.abort(new Error('already stopped')))).rejects.toThrow('already stopped');
    expect(api.connections()).toBe(0);
  });

  it('aborts a streaming body mid-way (watch)', async () => {
    const api = await fakeApiServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"ADDED","object":{}}\n'); // and keep the stream open
    });
    const t = transport(configFor(api.url));
    const ac = new AbortController();
    const res = await t.send({ method: 'GET', path: '/api/v1/pods', query: { watch: 'true' }, signal: ac.signal });
    const it = res.body[Symbol.asyncIterator]();
    const first = await it.next();
    expect(Buffer.from(first.value as Uint8Array).toString()).toContain('ADDED');
    const pending = it.next();
    ac.abort(new Error('kill switch'));
    await expect(pending).rejects.toThrow('kill switch');
  });

  it('reports a stream the server breaks as a NetworkError', async () => {
    const api = await fakeApiServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': '1000' });
      res.write('{"partial":');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const t = transport(configFor(api.url));
    const res = await get(t);
    await expect(text(res.body)).rejects.toBeInstanceOf(NetworkError);
  });

  it('fails a request whose socket stays silent past the socket timeout', async () => {
    const api = await fakeApiServer(() => undefined);
    const t = transport(configFor(api.url), { socketTimeoutMs: 200 });
    await expect(get(t)).rejects.toThrow(/no data for 200 ms/);
    expect(api.seen).toHaveLength(1);
  });

  it('reports a refused connection as a NetworkError without leaking the token', async () => {
    const t = transport(configFor('https://127.0.0.1:1'));
    const err = await get(t).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect(String((err as Error).message)).not.toContain('secret-token');
  });

  it('speaks plain HTTP to an http:// server', async () => {
    const api = await fakeApiServer((_req, res) => res.end('{"plain":true}'), { plain: true });
    const t = transport(configFor(api.url));
    expect(await text((await get(t)).body)).toEqual({ text: '{"plain":true}', bytes: 14 });
  });

  it('buildQuery omits undefined values', () => {
    expect(buildQuery({ a: '1', b: undefined, c: 'x y' })).toBe('?a=1&c=x+y');
    expect(buildQuery({})).toBe('');
  });
});
