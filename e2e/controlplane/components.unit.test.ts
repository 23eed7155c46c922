import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import {
  KWOK_STAGES,
  REPO_KWOK_STAGES,
  POD_CIDR,
  SERVICE_CIDR,
  apiServerArgs,
  controllerManagerArgs,
  corefile,
  etcdArgs,
  kubeconfig,
  kwokArgs,
  schedulerArgs,
  tokenFile,
  type ClusterLayout,
} from './components.js';

const layout: ClusterLayout = {
  name: 'east',
  etcdURL: 'http://127.0.0.1:2379',
  etcdPrefix: '/tro/east',
  apiServerPort: 26443,
  dnsPort: 25353,
  dnsMetricsPort: 29153,
  dnsHealthPort: 28080,
  dnsReadyPort: 28181,
  files: {
    tokenFile: '/w/east/tokens.csv',
    certDir: '/w/east/certs',
    caCert: '/w/pki/ca.crt',
    serverCert: '/w/pki/server.crt',
    serverKey: '/w/pki/server.key',
    serviceAccountKey: '/w/pki/sa.key',
    serviceAccountPub: '/w/pki/sa.pub',
    controllerManagerKubeconfig: '/w/east/kcm.kubeconfig',
    schedulerKubeconfig: '/w/east/sched.kubeconfig',
    kwokKubeconfig: '/w/east/kwok.kubeconfig',
    coreDNSKubeconfig: '/w/east/coredns.kubeconfig',
    corefile: '/w/east/Corefile',
  },
};

describe('component command lines', () => {
  it('etcd listens on loopback only, without fsync', () => {
    const args = etcdArgs({ name: 'e', dataDir: '/d', clientPort: 1, peerPort: 2 });
    expect(args).toContain('--unsafe-no-fsync=true');
    expect(args.filter((a) => a.includes('://')).every((a) => a.includes('http://127.0.0.1:'))).toBe(true);
  });

  it('kube-apiserver: shared etcd with a per-cluster prefix, token auth, RBAC, our service range', () => {
    const args = apiServerArgs(layout);
    expect(args).toEqual(
      expect.arrayContaining([
        '--etcd-servers=http://127.0.0.1:2379',
        '--etcd-prefix=/tro/east',
        '--secure-port=26443',
        '--bind-address=127.0.0.1',
        '--token-auth-file=/w/east/tokens.csv',
        '--authorization-mode=RBAC',
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--service-account-signing-key-file=/w/pki/sa.key',
        '--service-account-key-file=/w/pki/sa.pub',
      ]),
    );
  });

  it('controller-manager and scheduler: no serving port, no leader election', () => {
    for (const args of [controllerManagerArgs(layout), schedulerArgs(layout)]) {
      expect(args).toEqual(expect.arrayContaining(['--leader-elect=false', '--secure-port=0']));
    }
    expect(controllerManagerArgs(layout)).toEqual(expect.arrayContaining(['--root-ca-file=/w/pki/ca.crt', '--service-account-private-key-file=/w/pki/sa.key']));
  });

  it('kwok manages all nodes with leases, a pod range apart from the service range, and every stage file', () => {
    const args = kwokArgs(layout, '/bin/kwok-stages');
    expect(args).toEqual(expect.arrayContaining(['--manage-all-nodes=true', `--cidr=${POD_CIDR}`, '--node-lease-duration-seconds=40']));
    expect(args.filter((a) => a.startsWith('--config='))).toEqual([
      ...KWOK_STAGES.map((s) => `--config=/bin/kwok-stages/${s}`),
      ...REPO_KWOK_STAGES.map((s) => `--config=${s}`),
    ]);
    // Deleted pods stay Terminating a moment (ours), never removed at once (kwok's fast stage).
    expect(KWOK_STAGES).not.toContain('pod/fast/pod-delete.yaml');
    for (const s of REPO_KWOK_STAGES) expect(readFileSync(s, 'utf8')).toMatch(/durationMilliseconds: [1-9]\d{2,}/);
    expect(POD_CIDR.split('.').slice(0, 2)).not.toEqual(SERVICE_CIDR.split('.').slice(0, 2));
  });

  it('the Corefile serves cluster.local from the kubeconfig, binds 127.0.0.1 and exports metrics', () => {
    const text = corefile(layout, 'east');
    expect(text.startsWith('.:25353 {')).toBe(true);
    expect(text).toContain('bind 127.0.0.1');
    expect(text).toContain('kubernetes cluster.local in-addr.arpa ip6.arpa {');
    expect(text).toContain('kubeconfig /w/east/coredns.kubeconfig east');
    expect(text).toContain('prometheus 127.0.0.1:29153');
    expect(text).toContain('health 127.0.0.1:28080');
    expect(text).toContain('ready 127.0.0.1:28181');
    expect(text).not.toContain('forward');
  });
});

describe('tokenFile', () => {
  it('writes token,user,uid,"groups" lines', () => {
    expect(
      tokenFile([
        { token: 't1', user: 'admin', uid: 'admin', groups: ['system:masters'] },
        { token: 't2', user: 'system:serviceaccount:ns:sa', uid: 'u2', groups: ['system:serviceaccounts', 'system:serviceaccounts:ns'] },
        { token: 't3', user: 'nobody', uid: 'u3', groups: [] },
      ]),
    ).toBe('t1,admin,admin,"system:masters"\nt2,system:serviceaccount:ns:sa,u2,"system:serviceaccounts,system:serviceaccounts:ns"\nt3,nobody,u3,""\n');
  });

  it('refuses values that would corrupt the CSV', () => {
    expect(() => tokenFile([{ token: 't', user: 'a,b', uid: 'u', groups: [] }])).toThrow(/comma, quote or newline/);
    expect(() => tokenFile([{ token: 't', user: 'a', uid: 'u', groups: ['x"y'] }])).toThrow(/comma, quote or newline/);
  });
});

describe('kubeconfig', () => {
  it('is self-contained and loads in client-node with the given server, CA and token', () => {
    const text = kubeconfig({ cluster: 'east', server: 'https://127.0.0.1:26443', caData: 'Q0E=', user: 'east-admin', token: 'secret', context: 'east' });
    const kc = new KubeConfig();
    kc.loadFromString(text);
    expect(kc.getCurrentContext()).toBe('east');
    expect(kc.getCurrentCluster()).toMatchObject({ name: 'east', server: 'https://127.0.0.1:26443', caData: 'Q0E=' });
    expect(kc.getCurrentUser()).toMatchObject({ name: 'east-admin', token: 'secret' });
    const raw = parse(text) as { clusters: Array<{ cluster: Record<string, unknown> }> };
    expect(Object.keys(raw.clusters[0]?.cluster ?? {}).sort()).toEqual(['certificate-authority-data', 'server']);
  });
});
