import { afterAll, beforeAll, describe, it, expect } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  FileTokenSource,
  KubeConfigError,
  credentialPluginOf,
  inClusterConfig,
  kubeConfigFromFiles,
  kubeConfigFromString,
  loadDefaultConfig,
  serverUrlProblem,
  type ApiServerConfig,
} from './kubeconfig.js';
import { KubeconfigSyntaxError, parseKubeconfigYaml } from './kubeconfigyaml.js';
import { selfSignedCert, type TestCert } from '../../testkit/core/tls.js';

let dir: string;
let ca: TestCert;
let client: TestCert;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kubeconfig-test-'));
  ca = selfSignedCert(dir, 'ca', 'cluster-ca', 'DNS:kubernetes');
  client = selfSignedCert(dir, 'client', 'agent', 'DNS:agent');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh directory per test. */
function tmp(): string {
  const d = path.join(dir, `t${n++}`);
  mkdirSync(d);
  return d;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const token = async (c: ApiServerConfig) => c.token?.token();

describe('inClusterConfig', () => {
  it('uses the service host/port, the service account CA and its token', async () => {
    const sa = tmp();
    writeFileSync(path.join(sa, 'token'), 'sa-token-1\n');
    writeFileSync(path.join(sa, 'ca.crt'), ca.cert);
    const c = await inClusterConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, { dir: sa });
    expect(c).toMatchObject({ server: 'https://10.96.0.1:443', ca: ca.cert, insecureSkipTLSVerify: false, source: 'in-cluster service account' });
    expect(await token(c)).toBe('sa-token-1');
    const v6 = await inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, { dir: sa });
    expect(v6.server).toBe('https://[fd00::1]:443');
  });

  it('re-reads the rotated token after the refresh period, and keeps the last good one if the file vanishes', async () => {
    const sa = tmp();
    writeFileSync(path.join(sa, 'token'), 'first');
    writeFileSync(path.join(sa, 'ca.crt'), ca.cert);
    let now = 1_000_000;
    const c = await inClusterConfig({ KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '6443' }, { dir: sa, now: () => now, tokenRefreshMs: 60_000 });
    writeFileSync(path.join(sa, 'token'), 'second');
    now += 59_999;
    expect(await token(c)).toBe('first');
    now += 1;
    expect(await token(c)).toBe('second');
    unlinkSync(path.join(sa, 'token'));
    now += 60_000;
    expect(await token(c)).toBe('second');
    writeFileSync(path.join(sa, 'token'), 'third');
    expect(await token(c)).toBe('third');
  });

  it('fails clearly without the env or the token', async () => {
    await expect(inClusterConfig({}, { dir: tmp() })).rejects.toThrow(/KUBERNETES_SERVICE_HOST/);
    await expect(inClusterConfig({ KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' }, { dir: tmp() })).rejects.toThrow(
      /cannot read token file .*token: ENOENT/,
    );
  });
});

describe('FileTokenSource', () => {
  it('shares one read among concurrent callers and refuses an empty file', async () => {
    const d = tmp();
    const f = path.join(d, 'tok');
    writeFileSync(f, 'abc');
    const src = new FileTokenSource(f);
    expect(await Promise.all([src.token(), src.token(), src.token()])).toEqual(['abc', 'abc', 'abc']);
    writeFileSync(path.join(d, 'empty'), '\n');
    await expect(new FileTokenSource(path.join(d, 'empty')).token()).rejects.toThrow(KubeConfigError);
  });
});

describe('kubeconfig files', () => {
  it('reads the current context: server, *-data fields and a token', async () => {
    const c = await kubeConfigFromString(
      `apiVersion: v1
kind: Config
current-context: prod
contexts:
  - name: dev
    context: { cluster: dev, user: dev }
  - name: prod
    context: { cluster: prod, user: agent }
clusters:
  - name: dev
    cluster: { server: https://dev.example:6443 }
  - name: prod
    cluster:
      server: https://prod.example:6443/
      certificate-authority-data: ${b64(ca.cert)}
      tls-server-name: kubernetes
users:
  - name: dev
    user: { token: dev-token }
  - name: agent
    user:
      token: prod-token
      client-certificate-data: ${b64(client.cert)}
      client-key-data: ${b64(client.key)}
`,
      { source: 'test.yaml' },
    );
    expect(c).toMatchObject({
      server: 'https://prod.example:6443',
      ca: ca.cert,
      cert: client.cert,
      key: client.key,
      tlsServerName: 'kubernetes',
      insecureSkipTLSVerify: false,
    });
    expect(c.source).toBe('test.yaml (context "prod")');
    expect(await token(c)).toBe('prod-token');
  });

  it('reads file fields relative to the kubeconfig, a tokenFile (winning over token) and insecure-skip-tls-verify', async () => {
    const d = tmp();
    mkdirSync(path.join(d, 'pki'));
    writeFileSync(path.join(d, 'pki', 'ca.crt'), ca.cert);
    writeFileSync(path.join(d, 'pki', 'client.crt'), client.cert);
    writeFileSync(path.join(d, 'pki', 'client.key'), client.key);
    writeFileSync(path.join(d, 'tok'), 'file-token\n');
    const file = path.join(d, 'config');
    writeFileSync(
      file,
      `current-context: c
contexts: [{ name: c, context: { cluster: k, user: u } }]
clusters: [{ name: k, cluster: { server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt, insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: literal, tokenFile: tok, client-certificate: pki/client.crt, client-key: ${path.join(d, 'pki', 'client.key')} } }]
`,
    );
    const c = await kubeConfigFromFiles([file]);
    expect(c).toMatchObject({ server: 'https://127.0.0.1:6443', ca: ca.cert, cert: client.cert, key: client.key, insecureSkipTLSVerify: true });
    expect(await token(c)).toBe('file-token');
  });

  it('reads the JSON that client-node exportConfig() writes, without a user (anonymous)', async () => {
    const text = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'http://127.0.0.1:8080', 'insecure-skip-tls-verify': false } }],
      users: [],
      contexts: [{ name: 'x', context: { cluster: 'c' } }],
      preferences: {},
      'current-context': 'x',
    });
    const c = await kubeConfigFromString(text);
    expect(c.server).toBe('http://127.0.0.1:8080');
    expect(c.token).toBeUndefined();
    expect(c.ca).toBeUndefined();
  });

  it('merges a KUBECONFIG list: the first file to name an entry or a current-context wins; missing files are skipped', async () => {
    const d = tmp();
    writeFileSync(
      path.join(d, 'a'),
      `current-context: one\nclusters: [{ name: k, cluster: { server: "https://a:1" } }]\nusers: [{ name: u, user: { token: ta } }]\n`,
    );
    writeFileSync(
      path.join(d, 'b'),
      `current-context: two\ncontexts: [{ name: one, context: { cluster: k, user: u } }]\nclusters: [{ name: k, cluster: { server: "https://b:1" } }]\n`,
    );
    const c = await loadDefaultConfig({ KUBECONFIG: [path.join(d, 'a'), path.join(d, 'missing'), path.join(d, 'b')].join(path.delimiter) });
    expect(c.server).toBe('https://a:1');
    expect(await token(c)).toBe('ta');
    await expect(loadDefaultConfig({ KUBECONFIG: path.join(d, 'missing') })).rejects.toThrow(/cannot read kubeconfig .*missing: ENOENT/);
  });

  const secret = 'sup3r-s3cret-value';
  it.each([
    [
      'exec',
      `exec: { apiVersion: client.authentication.k8s.io/v1, command: aws, args: [eks, get-token, --token, ${secret}], env: [{ name: T, value: ${secret} }] }`,
      /exec credential plugin/,
    ],
    ['auth-provider', `auth-provider: { name: oidc, config: { id-token: ${secret}, refresh-token: ${secret} } }`, /auth-provider plugin/],
    ['basic auth', `username: admin\n      password: ${secret}`, /basic authentication/],
  ])('refuses a user with %s, naming the user but never a credential', async (_what, userYaml, message) => {
    const text = `current-context: c
contexts: [{ name: c, context: { cluster: k, user: cloud-user } }]
clusters: [{ name: k, cluster: { server: "https://k:443" } }]
users:
  - name: cloud-user
    user:
      ${userYaml}
      client-key-data: ${b64(`-----BEGIN KEY-----${secret}`)}
`;
    const err = await kubeConfigFromString(text, { source: '/home/me/.kube/config' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeConfigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(message);
    expect(msg).toContain('user "cloud-user"');
    expect(msg).toContain('/home/me/.kube/config');
    expect(msg).not.toContain(secret);
    expect(JSON.stringify(err)).not.toContain(secret);
    expect((err as Error).cause).toBeUndefined();
  });

  it('reports a YAML syntax error by position, without quoting the line (it may hold a token)', async () => {
    const err = await kubeConfigFromString(`users:\n  - name: u\n    user: { token: ${secret}\n`, { source: 'broken' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeConfigError);
    expect((err as Error).message).toMatch(/^broken: not valid YAML \(line \d+, column \d+\)$/);
    expect((err as Error).cause).toBeUndefined();
  });

  it.each([
    ['no current-context', `clusters: []`, /no current-context/],
    ['a missing context', `current-context: x`, /context "x" not found/],
    ['a missing cluster', `current-context: x\ncontexts: [{ name: x, context: { cluster: k } }]`, /cluster "k" not found/],
    ['no server', `current-context: x\ncontexts: [{ name: x, context: { cluster: k } }]\nclusters: [{ name: k, cluster: {} }]`, /no server/],
    [
      'a proxy',
      `current-context: x\ncontexts: [{ name: x, context: { cluster: k } }]\nclusters: [{ name: k, cluster: { server: "https://k", proxy-url: "http://p:3128" } }]`,
      /proxy-url is not supported/,
    ],
    [
      'bad CA data',
      `current-context: x\ncontexts: [{ name: x, context: { cluster: k } }]\nclusters: [{ name: k, cluster: { server: "https://k", certificate-authority-data: bm9wZQ== } }]`,
      /certificate-authority-data is not base64-encoded PEM/,
    ],
    [
      'a cert without key',
      `current-context: x\ncontexts: [{ name: x, context: { cluster: k, user: u } }]\nclusters: [{ name: k, cluster: { server: "https://k" } }]\nusers: [{ name: u, user: { client-certificate-data: ${b64('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')} } }]`,
      /needs both/,
    ],
    [
      'a missing user',
      `current-context: x\ncontexts: [{ name: x, context: { cluster: k, user: u } }]\nclusters: [{ name: k, cluster: { server: "https://k" } }]`,
      /user "u" not found/,
    ],
  ])('fails clearly on %s', async (_what, text, message) => {
    await expect(kubeConfigFromString(text)).rejects.toThrow(message);
  });
});

describe('loadDefaultConfig', () => {
  it('takes KUBECONFIG, else ~/.kube/config, else the in-cluster service account, else fails', async () => {
    const d = tmp();
    const kc = (server: string) =>
      `current-context: c\ncontexts: [{ name: c, context: { cluster: k } }]\nclusters: [{ name: k, cluster: { server: "${server}" } }]\n`;
    writeFileSync(path.join(d, 'explicit'), kc('https://explicit:1'));
    const home = path.join(d, 'home');
    mkdirSync(path.join(home, '.kube'), { recursive: true });
    writeFileSync(path.join(home, '.kube', 'config'), kc('https://home:1'));
    const sa = path.join(d, 'sa');
    mkdirSync(sa);
    writeFileSync(path.join(sa, 'token'), 't');
    writeFileSync(path.join(sa, 'ca.crt'), ca.cert);
    const inCluster = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    const o = { serviceAccountDir: sa };
    expect((await loadDefaultConfig({ ...inCluster, KUBECONFIG: path.join(d, 'explicit') }, { ...o, home })).server).toBe('https://explicit:1');
    expect((await loadDefaultConfig({ ...inCluster }, { ...o, home })).server).toBe('https://home:1');
    expect((await loadDefaultConfig({ ...inCluster, HOME: path.join(d, 'nohome') }, o)).server).toBe('https://10.0.0.1:443');
    await expect(loadDefaultConfig({ HOME: path.join(d, 'nohome') }, o)).rejects.toThrow(/no API server configuration/);
  });
});

describe('the checks the operator shares', () => {
  it('serverUrlProblem names what is wrong with a server URL', () => {
    expect(['https://k:6443', 'http://k', 'not a url', 'ftp://k', 'https://u:p@k'].map(serverUrlProblem)).toEqual([
      undefined,
      undefined,
      'NotAURL',
      'NotHTTP',
      'Credentials',
    ]);
  });

  it('credentialPluginOf finds exec or auth-provider, even empty', () => {
    expect([{ exec: { command: 'aws' } }, { 'auth-provider': { name: 'oidc' } }, { exec: '' }, { exec: null, token: 't' }].map(credentialPluginOf)).toEqual([
      'exec',
      'auth-provider',
      'exec',
      undefined,
    ]);
  });

  it('parseKubeconfigYaml keeps the last of repeated keys, refuses an alias bomb and reports errors by position only', () => {
    expect(parseKubeconfigYaml('a: 1\na: 2\n')).toEqual({ a: 2 });
    const bomb = `a: &a [x]\nb: [${Array.from({ length: 60 }, () => '*a').join(', ')}]\n`;
    expect(() => parseKubeconfigYaml(bomb)).toThrow(/^not valid YAML \(aliases\)$/);
    const err = (() => {
      try {
        parseKubeconfigYaml('users:\n  - { token: s3cret\n');
      } catch (e) {
        return e as KubeconfigSyntaxError;
      }
      throw new Error('expected a syntax error');
    })();
    expect(err).toBeInstanceOf(KubeconfigSyntaxError);
    expect([err.line, typeof err.column]).toEqual([expect.any(Number), 'number']);
    expect(err.message).not.toContain('s3cret');
  });
});
