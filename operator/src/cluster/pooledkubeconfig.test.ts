import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { selfSignedCert } from '../../../testkit/core/tls.js';
import { parseKubeconfig } from './kubeconfig.js';
import { PooledKubeConfig } from './pooledkubeconfig.js';

// A TLS API server that counts the connections it accepted and the bearer tokens it saw.
let dir: string;
let server: https.Server;
let port: number;
let ca: string;
let connections = 0;
const tokens: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pooled-kc-test-'));
  const cert = selfSignedCert(dir, 'server', '127.0.0.1', 'IP:127.0.0.1');
  ca = cert.cert;
  // keepAliveTimeout 0: no Keep-Alive header, as kube-apiserver; the client decides when to close.
  server = https.createServer({ cert: cert.cert, key: cert.key, keepAliveTimeout: 0 }, (req, res) => {
    tokens.push(req.headers.authorization ?? '');
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Namespace', apiVersion: 'v1', metadata: { name: 'x' } }));
  });
  server.on('secureConnection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function kubeconfigText(token: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 't',
    contexts: [{ name: 't', context: { cluster: 't', user: 'u' } }],
    clusters: [{ name: 't', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
    users: [{ name: 'u', user: { token } }],
  });
}

async function connectionsFor(kc: KubeConfig, requests: number): Promise<number> {
  const before = connections;
  const api = kc.makeApiClient(CoreV1Api);
  for (let i = 0; i < requests; i++) await api.readNamespace({ name: 'x' });
  return connections - before;
}

// Ten requests one after another: without pooling each opens a TLS connection of its own. With it the
// pool reuses its connections; a connection returns to the pool a moment after its response's body was
// read, so a request sent right behind another may open a second one, never more when they go one by one.
describe('PooledKubeConfig', () => {
  it('sends the requests of one KubeConfig over its pooled connections, where plain client-node opens one per request', async () => {
    const plain = new KubeConfig();
    plain.loadFromString(kubeconfigText('plain-token'));
    expect(await connectionsFor(plain, 10)).toBe(10);

    const pooled = parseKubeconfig(kubeconfigText('pooled-token'));
    expect(pooled).toBeInstanceOf(PooledKubeConfig);
    const opened = await connectionsFor(pooled, 10);
    expect(opened).toBeGreaterThanOrEqual(1);
    expect(opened).toBeLessThanOrEqual(2);
    await (pooled as PooledKubeConfig).closeConnections();
  });

  it("keeps each request's own credentials: the token is read per request, not frozen into the pool", async () => {
    const kc = parseKubeconfig(kubeconfigText('first-token')) as PooledKubeConfig;
    const api = kc.makeApiClient(CoreV1Api);
    const before = connections;
    for (let i = 0; i < 5; i++) await api.readNamespace({ name: 'x' });
    // A rotated token (what client-node re-reads from an in-cluster token file) goes out on the pooled connections.
    (kc.getCurrentUser() as { token?: string }).token = 'second-token';
    for (let i = 0; i < 5; i++) await api.readNamespace({ name: 'x' });
    expect(connections - before).toBeLessThanOrEqual(2);
    expect(tokens.slice(-10)).toEqual([...Array.from({ length: 5 }, () => 'Bearer first-token'), ...Array.from({ length: 5 }, () => 'Bearer second-token')]);
    await kc.closeConnections();
  });

  it("never lends one KubeConfig's connections (its cluster, its credentials) to another", async () => {
    const a = parseKubeconfig(kubeconfigText('a')) as PooledKubeConfig;
    const b = parseKubeconfig(kubeconfigText('b')) as PooledKubeConfig;
    expect(await connectionsFor(a, 5)).toBeGreaterThanOrEqual(1);
    // a's connections are idle in its pool now; b opens its own.
    expect(await connectionsFor(b, 5)).toBeGreaterThanOrEqual(1);
    await Promise.all([a.closeConnections(), b.closeConnections()]);
  });

  it('after closeConnections, requests still work, each on a connection of its own', async () => {
    const kc = parseKubeconfig(kubeconfigText('closed')) as PooledKubeConfig;
    expect(await connectionsFor(kc, 4)).toBeLessThanOrEqual(2);
    await kc.closeConnections();
    await kc.closeConnections();
    expect(await connectionsFor(kc, 4)).toBe(4);
  });
});
