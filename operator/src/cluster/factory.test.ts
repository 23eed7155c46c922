import { describe, expect, it } from '@jest/globals';
import type { KubeConfig, V1Secret } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { TelemetryRollout } from '../api/types.generated.js';
import { ClusterUnavailableError, type ClusterClient, type ResolvedTarget } from '../rollout/interfaces.js';
import { TerminalError } from '../util/errors.js';
import { CLUSTER_NAME_LABEL, SecretClusterClientFactory, type ClosableClusterClient, type SecretReader } from './factory.js';

const FAKE_TOKEN = 'FAKE-TOKEN-5ecre7-abcdef0123456789';
const CA = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n').toString('base64');

function kubeconfig(server: string, user: Record<string, unknown> = { token: FAKE_TOKEN }): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'c',
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
    clusters: [{ name: 'k', cluster: { server, 'certificate-authority-data': CA } }],
    users: [{ name: 'u', user }],
  });
}

/** An in-memory SecretReader: what the manager's informer cache would give. */
class MemorySecrets implements SecretReader {
  readonly secrets = new Map<string, V1Secret>();
  reads = 0;
  private rv = 1;

  put(namespace: string, name: string, data: Record<string, string>, labels: Record<string, string> = {}): void {
    this.secrets.set(`${namespace}/${name}`, {
      metadata: { name, namespace, labels, resourceVersion: String(this.rv++) },
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    });
  }

  async get(namespace: string, name: string): Promise<V1Secret | undefined> {
    this.reads++;
    return this.secrets.get(`${namespace}/${name}`);
  }

  async list(namespace: string): Promise<V1Secret[]> {
    return [...this.secrets.values()].filter((s) => s.metadata?.namespace === namespace);
  }
}

interface FakeClient extends ClosableClusterClient {
  server: string | undefined;
  closed: boolean;
}

function fakeBuild(built: FakeClient[]) {
  return (name: string, kc: KubeConfig): ClosableClusterClient => {
    const c = {
      name,
      server: kc.getCurrentCluster()?.server,
      closed: false,
      close() {
        c.closed = true;
      },
    } as unknown as FakeClient;
    built.push(c);
    return c;
  };
}

function rollout(targets: TelemetryRollout['spec']['targets'], name = 'ro', namespace = 'fleet'): TelemetryRollout {
  return { metadata: { name, namespace }, spec: { targets } } as unknown as TelemetryRollout;
}

const target = (name: string, secretName = `${name}-kubeconfig`, secretKey = 'value'): ResolvedTarget => ({ name, secretName, secretKey });

describe('SecretClusterClientFactory.resolveTargets', () => {
  const factory = (reader = new MemorySecrets()) => new SecretClusterClientFactory({ reader, build: fakeBuild([]) });

  it('keeps an explicit cluster list in its order, defaulting the key to "value"', async () => {
    const ro = rollout({
      clusters: [
        { name: 'zeta', kubeconfigSecretRef: { name: 'zeta-kc', key: 'kubeconfig' }, metrics: { coreDNSMetricsURL: 'http://dns:9153/metrics' } },
        { name: 'alpha', kubeconfigSecretRef: { name: 'alpha-kc' } as { name: string; key: string } },
      ],
    });
    expect(await factory().resolveTargets(ro)).toEqual([
      { name: 'zeta', secretName: 'zeta-kc', secretKey: 'kubeconfig', metrics: { coreDNSMetricsURL: 'http://dns:9153/metrics' } },
      { name: 'alpha', secretName: 'alpha-kc', secretKey: 'value' },
    ]);
  });

  it('selects Secrets of the rollout namespace by labels and expressions, named by label or Secret name, sorted', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'kc-west', { value: 'x' }, { fleet: 'prod', [CLUSTER_NAME_LABEL]: 'west' });
    reader.put('fleet', 'east', { value: 'x' }, { fleet: 'prod', tier: 'gold' });
    reader.put('fleet', 'kc-staging', { value: 'x' }, { fleet: 'staging' });
    reader.put('fleet', 'kc-retired', { value: 'x' }, { fleet: 'prod', retired: 'true' });
    reader.put('other', 'kc-elsewhere', { value: 'x' }, { fleet: 'prod' });
    const ro = rollout({
      selector: { matchLabels: { fleet: 'prod' }, matchExpressions: [{ key: 'retired', operator: 'DoesNotExist' }], key: 'value' },
    });
    expect(await factory(reader).resolveTargets(ro)).toEqual([
      { name: 'east', secretName: 'east', secretKey: 'value' },
      { name: 'west', secretName: 'kc-west', secretKey: 'value' },
    ]);
  });

  it('uses the selector key for every selected Secret', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'a', { kubeconfig: 'x' }, { fleet: 'prod' });
    const ro = rollout({ selector: { matchLabels: { fleet: 'prod' }, key: 'kubeconfig' } });
    expect(await factory(reader).resolveTargets(ro)).toEqual([{ name: 'a', secretName: 'a', secretKey: 'kubeconfig' }]);
  });

  it('refuses two Secrets that name the same cluster', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'a', { value: 'x' }, { fleet: 'prod', [CLUSTER_NAME_LABEL]: 'east' });
    reader.put('fleet', 'b', { value: 'x' }, { fleet: 'prod', [CLUSTER_NAME_LABEL]: 'east' });
    await expect(factory(reader).resolveTargets(rollout({ selector: { matchLabels: { fleet: 'prod' }, key: 'value' } }))).rejects.toThrow(TerminalError);
  });

  it('refuses an invalid selector', async () => {
    const ro = rollout({ selector: { matchExpressions: [{ key: 'a', operator: 'In' }], key: 'value' } });
    await expect(factory().resolveTargets(ro)).rejects.toThrow(/needs values/);
  });
});

describe('SecretClusterClientFactory.client', () => {
  it('builds a client from the Secret and caches it while the kubeconfig is unchanged', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east.example:6443') });
    const built: FakeClient[] = [];
    const f = new SecretClusterClientFactory({ reader, build: fakeBuild(built) });
    const ro = rollout({ clusters: [] });
    const a = await f.client(ro, target('east'));
    const b = await f.client(ro, target('east'));
    expect(a).toBe(b);
    expect(built).toHaveLength(1);
    expect(built[0]?.name).toBe('east');
    expect(built[0]?.server).toBe('https://east.example:6443');

    // A Secret update that leaves the kubeconfig as it was keeps the client (and its node cache).
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east.example:6443'), note: 'rotated something else' });
    expect(await f.client(ro, target('east'))).toBe(a);
    expect(built).toHaveLength(1);
  });

  it('rebuilds the client when the kubeconfig changes and closes the old one', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east.example:6443') });
    const built: FakeClient[] = [];
    const f = new SecretClusterClientFactory({ reader, build: fakeBuild(built) });
    const ro = rollout({ clusters: [] });
    const first = (await f.client(ro, target('east'))) as FakeClient;
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east-new.example:6443') });
    const second = (await f.client(ro, target('east'))) as FakeClient;
    expect(second).not.toBe(first);
    expect(second.server).toBe('https://east-new.example:6443');
    expect(first.closed).toBe(true);
    expect(second.closed).toBe(false);
    expect(f.size).toBe(1);
  });

  it('closes and forgets the client when its Secret is deleted or broken', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east.example:6443') });
    const built: FakeClient[] = [];
    const f = new SecretClusterClientFactory({ reader, build: fakeBuild(built) });
    const ro = rollout({ clusters: [] });
    const first = (await f.client(ro, target('east'))) as FakeClient;
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east.example:6443', { exec: { command: 'x' } }) });
    await expect(f.client(ro, target('east'))).rejects.toThrow(ClusterUnavailableError);
    expect(first.closed).toBe(true);
    expect(f.size).toBe(0);
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east.example:6443') });
    const second = (await f.client(ro, target('east'))) as FakeClient;
    expect(second).not.toBe(first);
    reader.secrets.delete('fleet/east-kubeconfig');
    await expect(f.client(ro, target('east'))).rejects.toMatchObject({ reason: 'SecretNotFound' });
    expect(second.closed).toBe(true);
    expect(f.size).toBe(0);
  });

  it('keeps distinct clients per Secret key and per namespace', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'kc', { a: kubeconfig('https://a.example'), b: kubeconfig('https://b.example') });
    reader.put('other', 'kc', { a: kubeconfig('https://other.example') });
    const built: FakeClient[] = [];
    const f = new SecretClusterClientFactory({ reader, build: fakeBuild(built) });
    const a = (await f.client(rollout({ clusters: [] }), target('a', 'kc', 'a'))) as FakeClient;
    const b = (await f.client(rollout({ clusters: [] }), target('b', 'kc', 'b'))) as FakeClient;
    const o = (await f.client(rollout({ clusters: [] }, 'ro', 'other'), target('a', 'kc', 'a'))) as FakeClient;
    expect([a.server, b.server, o.server]).toEqual(['https://a.example', 'https://b.example', 'https://other.example']);
    expect(f.size).toBe(3);
  });

  it('closes clients when the last rollout using them is released, and all on close()', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east.example') });
    reader.put('fleet', 'west-kubeconfig', { value: kubeconfig('https://west.example') });
    const built: FakeClient[] = [];
    const f = new SecretClusterClientFactory({ reader, build: fakeBuild(built) });
    const east = (await f.client(rollout({ clusters: [] }, 'one'), target('east'))) as FakeClient;
    await f.client(rollout({ clusters: [] }, 'two'), target('east'));
    const west = (await f.client(rollout({ clusters: [] }, 'two'), target('west'))) as FakeClient;
    await f.release('fleet', 'two');
    expect(west.closed).toBe(true);
    expect(east.closed).toBe(false);
    await f.close();
    expect(east.closed).toBe(true);
    expect(f.size).toBe(0);
  });

  describe('failures name the cluster and the Secret, never its content', () => {
    const cases: Array<[string, (r: MemorySecrets) => void, string, RegExp]> = [
      ['missing Secret', () => undefined, 'SecretNotFound', /cluster east: kubeconfig Secret fleet\/east-kubeconfig not found/],
      [
        'missing key',
        (r) => r.put('fleet', 'east-kubeconfig', { config: kubeconfig('https://e.example') }),
        'SecretKeyMissing',
        /Secret fleet\/east-kubeconfig has no key "value" \(it has "config"\)/,
      ],
      ['empty Secret', (r) => r.put('fleet', 'east-kubeconfig', {}), 'SecretKeyMissing', /has no key "value" \(it has no data\)/],
      [
        'invalid YAML',
        (r) => r.put('fleet', 'east-kubeconfig', { value: `clusters: [ {token: ${FAKE_TOKEN}` }),
        'InvalidKubeconfig',
        /kubeconfig in Secret fleet\/east-kubeconfig key "value" is not valid YAML/,
      ],
      ['no server', (r) => r.put('fleet', 'east-kubeconfig', { value: kubeconfig('') }), 'InvalidKubeconfig', /has no server/],
      [
        'exec plugin',
        (r) => r.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://e.example', { exec: { command: 'get-token', args: [FAKE_TOKEN] } }) }),
        'UnsupportedKubeconfig',
        /exec credential plugin/,
      ],
      [
        'auth-provider',
        (r) =>
          r.put('fleet', 'east-kubeconfig', {
            value: kubeconfig('https://e.example', { 'auth-provider': { name: 'gcp', config: { 'access-token': FAKE_TOKEN } } }),
          }),
        'UnsupportedKubeconfig',
        /auth-provider/,
      ],
      [
        'token file',
        (r) =>
          r.put('fleet', 'east-kubeconfig', {
            value: kubeconfig('https://e.example', { 'token-file': '/var/run/secrets/kubernetes.io/serviceaccount/token', token: FAKE_TOKEN }),
          }),
        'UnsupportedKubeconfig',
        /token-file/,
      ],
      [
        'client certificate file',
        (r) =>
          r.put('fleet', 'east-kubeconfig', {
            value: kubeconfig('https://e.example', { 'client-certificate': '/c.pem', 'client-key': '/k.pem', token: FAKE_TOKEN }),
          }),
        'UnsupportedKubeconfig',
        /client-certificate/,
      ],
    ];

    it.each(cases)('%s', async (_name, setup, reason, message) => {
      const reader = new MemorySecrets();
      setup(reader);
      const f = new SecretClusterClientFactory({ reader, build: fakeBuild([]) });
      let caught: unknown;
      try {
        await f.client(rollout({ clusters: [] }), target('east'));
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ClusterUnavailableError);
      const err = caught as ClusterUnavailableError;
      expect(err.reason).toBe(reason);
      expect(err.cluster).toBe('east');
      expect(err.message).toMatch(message);
      // Neither the token nor any other piece of the kubeconfig, anywhere in the error.
      const everything = `${err.message}\n${err.stack ?? ''}\n${JSON.stringify(err)}\n${err.cause instanceof Error ? err.cause.message : ''}`;
      expect(everything).not.toContain(FAKE_TOKEN);
      expect(everything).not.toContain(CA);
    });
  });

  it('passes a failure to read the Secret on as a plain (retryable) error naming the cluster', async () => {
    const reader: SecretReader = {
      get: async () => {
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
      list: async () => [],
    };
    const f = new SecretClusterClientFactory({ reader, build: fakeBuild([]) });
    const p = f.client(rollout({ clusters: [] }), target('east'));
    await expect(p).rejects.toThrow(/cluster east: read kubeconfig Secret fleet\/east-kubeconfig/);
    await expect(p).rejects.not.toBeInstanceOf(ClusterUnavailableError);
  });

  it('builds a real KubeClusterClient by default', async () => {
    const reader = new MemorySecrets();
    reader.put('fleet', 'east-kubeconfig', { value: kubeconfig('https://east.example:6443') });
    const f = new SecretClusterClientFactory({ reader });
    const c: ClusterClient = await f.client(rollout({ clusters: [] }), target('east'));
    expect(c.name).toBe('east');
    await f.close();
  });
});
