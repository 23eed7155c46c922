import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, loadKubeConfig } from './client.js';
import { CliError, EXIT } from './errors.js';

const TOKEN = 'sekrit-token-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'tro-cli-client-'));

function kubeconfig(file: string, server: string, o: { namespace?: string; current?: string } = {}): string {
  const path = join(dir, file);
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters:
  - name: c
    cluster: { server: "${server}", insecure-skip-tls-verify: true }
users:
  - name: u
    user: { token: ${TOKEN} }
contexts:
  - name: main
    context: { cluster: c, user: u${o.namespace ? `, namespace: ${o.namespace}` : ''} }
  - name: other
    context: { cluster: c, user: u, namespace: elsewhere }
current-context: "${o.current ?? 'main'}"
`,
  );
  return path;
}

function failure(fn: () => unknown): CliError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  throw new Error('expected a CliError');
}

async function rejection(p: Promise<unknown>): Promise<CliError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  throw new Error('expected a CliError');
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadKubeConfig', () => {
  it('is a usage error for a missing file, a bad context or no current context', () => {
    expect(failure(() => loadKubeConfig({ kubeconfig: join(dir, 'nope') }))).toMatchObject({
      exitCode: EXIT.usage,
      message: `cannot load kubeconfig ${join(dir, 'nope')}: no such file`,
    });
    const kc = kubeconfig('ctx.yaml', 'http://127.0.0.1:1');
    expect(failure(() => loadKubeConfig({ kubeconfig: kc, context: 'missing' }))).toMatchObject({
      exitCode: EXIT.usage,
      message: 'context "missing" not found in the kubeconfig',
    });
    const none = kubeconfig('none.yaml', 'http://127.0.0.1:1', { current: '' });
    expect(failure(() => loadKubeConfig({ kubeconfig: none })).message).toMatch(/has no current context with a cluster; pass --context/);
  });

  it('never quotes the file in a parse error', () => {
    const path = join(dir, 'broken.yaml');
    writeFileSync(path, `users:\n  - name: u\n    user: { token: ${TOKEN}\n  bad: [\n`);
    const e = failure(() => loadKubeConfig({ kubeconfig: path }));
    expect(e.exitCode).toBe(EXIT.usage);
    expect(e.message).toMatch(/^cannot load kubeconfig .*broken\.yaml: /);
    expect(e.message).not.toContain(TOKEN);
  });

  it('takes the namespace from the flag, else the context, else default', () => {
    const withNs = kubeconfig('ns.yaml', 'http://127.0.0.1:1', { namespace: 'team-a' });
    const without = kubeconfig('nons.yaml', 'http://127.0.0.1:1');
    expect(connect({ kubeconfig: withNs, requestTimeoutSeconds: 1 }).namespace).toBe('team-a');
    expect(connect({ kubeconfig: withNs, namespace: 'x', requestTimeoutSeconds: 1 }).namespace).toBe('x');
    expect(connect({ kubeconfig: without, requestTimeoutSeconds: 1 }).namespace).toBe('default');
    expect(connect({ kubeconfig: without, context: 'other', requestTimeoutSeconds: 1 }).namespace).toBe('elsewhere');
  });
});

describe('KubeRolloutApi against a fake API server', () => {
  const seen: Array<{ method?: string; url?: string; contentType?: string; authorization?: string; body: string }> = [];
  let server: http.Server;
  let base = '';
  const ro = { apiVersion: 'telemetry.rollout.dev/v1alpha1', kind: 'TelemetryRollout', metadata: { name: 'r1', namespace: 'ns' }, spec: {} };
  const send = (res: http.ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const status = (code: number, reason: string, message: string, details?: object) => ({
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    code,
    reason,
    message,
    details,
  });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, contentType: req.headers['content-type'], authorization: req.headers.authorization, body });
        const p = '/apis/telemetry.rollout.dev/v1alpha1';
        const url = req.url ?? '';
        if (url === `${p}/namespaces/ns/telemetryrollouts/r1`) return send(res, 200, body ? { ...ro, ...(JSON.parse(body) as object) } : ro);
        if (url === `${p}/namespaces/ns/telemetryrollouts`) return send(res, 200, { kind: 'TelemetryRolloutList', items: [ro] });
        if (url === `${p}/telemetryrollouts`) return send(res, 200, { kind: 'TelemetryRolloutList', items: [ro, ro] });
        if (url === `${p}/namespaces/ns/telemetryrollouts/missing`)
          return send(
            res,
            404,
            status(404, 'NotFound', 'telemetryrollouts.telemetry.rollout.dev "missing" not found', { name: 'missing', kind: 'telemetryrollouts' }),
          );
        if (url === `${p}/namespaces/denied/telemetryrollouts/r1`)
          return send(
            res,
            403,
            status(403, 'Forbidden', 'telemetryrollouts.telemetry.rollout.dev "r1" is forbidden: User "u" cannot get resource "telemetryrollouts"'),
          );
        if (url === `${p}/namespaces/hang/telemetryrollouts/r1`) return; // never answers
        send(res, 404, '404 page not found\n');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('gets, lists (one namespace or all) and merge-patches with the kubeconfig’s token', async () => {
    const { api, server: shown } = connect({ kubeconfig: kubeconfig('api.yaml', base), requestTimeoutSeconds: 5 });
    expect(shown).toBe(base);
    expect(await api.get('ns', 'r1')).toEqual(ro);
    expect(await api.list('ns')).toHaveLength(1);
    expect(await api.list(undefined)).toHaveLength(2);
    const patched = await api.patch('ns', 'r1', { spec: { paused: true } });
    expect(patched.spec).toEqual({ paused: true });
    const patch = seen.find((r) => r.method === 'PATCH');
    expect(patch).toMatchObject({ contentType: 'application/merge-patch+json', authorization: `Bearer ${TOKEN}`, body: '{"spec":{"paused":true}}' });
  });

  it('maps not found, a missing API, forbidden, timeouts and refused connections to exit codes', async () => {
    const { api } = connect({ kubeconfig: kubeconfig('err.yaml', base), requestTimeoutSeconds: 0.3 });
    const results = [
      await rejection(api.get('ns', 'missing')),
      await rejection(api.get('nocrd', 'r1')),
      await rejection(api.get('denied', 'r1')),
      await rejection(api.get('hang', 'r1')),
    ].map((e) => ({ code: e.exitCode, message: e.message }));
    expect(results).toEqual([
      { code: EXIT.notFound, message: 'telemetryrollout "missing" not found in namespace "ns"' },
      {
        code: EXIT.notFound,
        message: 'get telemetryrollout "r1" in namespace "nocrd": the server does not serve telemetryrollouts.telemetry.rollout.dev (is the CRD installed?)',
      },
      {
        code: EXIT.forbidden,
        message:
          'get telemetryrollout "r1" in namespace "denied": telemetryrollouts.telemetry.rollout.dev "r1" is forbidden: User "u" cannot get resource "telemetryrollouts"',
      },
      { code: EXIT.unreachable, message: `get telemetryrollout "r1" in namespace "hang": cannot reach ${base}: no answer within 0.3s (--request-timeout)` },
    ]);

    // A port nothing listens on: take one from the OS, then close it.
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closed = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise((resolve) => probe.close(resolve));
    const refused = connect({ kubeconfig: kubeconfig('refused.yaml', closed), requestTimeoutSeconds: 5 });
    const e = await rejection(refused.api.list('ns'));
    expect({ code: e.exitCode, message: e.message }).toEqual({
      code: EXIT.unreachable,
      message: `list telemetryrollouts in namespace "ns": cannot reach ${closed}: ECONNREFUSED`,
    });
    expect(JSON.stringify(results) + e.message).not.toContain(TOKEN);
  });
});
