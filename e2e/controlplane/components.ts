// Command lines and configuration files of the control-plane components, as pure functions of their
// inputs so they can be read in one place and unit-tested without starting anything.
import { stringify } from 'yaml';
import { fileURLToPath } from 'node:url';

/** Where one cluster's component files live and which ports it uses. */
export interface ClusterLayout {
  name: string;
  /** http://127.0.0.1:<port> of the etcd this cluster stores its objects in. */
  etcdURL: string;
  /** Key prefix in etcd; distinct per cluster so several API servers share one etcd. */
  etcdPrefix: string;
  apiServerPort: number;
  dnsPort: number;
  dnsMetricsPort: number;
  dnsHealthPort: number;
  dnsReadyPort: number;
  /** Absolute paths. */
  files: {
    tokenFile: string;
    certDir: string;
    caCert: string;
    serverCert: string;
    serverKey: string;
    serviceAccountKey: string;
    serviceAccountPub: string;
    controllerManagerKubeconfig: string;
    schedulerKubeconfig: string;
    kwokKubeconfig: string;
    coreDNSKubeconfig: string;
    corefile: string;
  };
}

/** The Service range of every cluster (the kube-apiserver hands out ClusterIPs from it). */
export const SERVICE_CIDR = '10.96.0.0/16';
/** kwok's pod IP range: kwok's default 10.0.0.0/24 holds only 254 pod IPs; this one does not overlap the Service range. */
export const POD_CIDR = '10.244.0.0/16';
/** The cluster DNS domain CoreDNS serves. */
export const CLUSTER_DOMAIN = 'cluster.local';

/** etcd with a throw-away data dir, listening on loopback only; fsync off because it is test data. */
export function etcdArgs(o: { name: string; dataDir: string; clientPort: number; peerPort: number }): string[] {
  const client = `http://127.0.0.1:${o.clientPort}`;
  const peer = `http://127.0.0.1:${o.peerPort}`;
  return [
    `--name=${o.name}`,
    `--data-dir=${o.dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${o.name}=${peer}`,
    '--unsafe-no-fsync=true',
    // Several API servers write here; the default 2 GiB quota would be hit by large fleets before memory is.
    '--quota-backend-bytes=8589934592',
    '--log-level=warn',
  ];
}

/**
 * kube-apiserver: static token authentication, RBAC, service-account tokens signed by our key, a serving
 * certificate from our CA on 127.0.0.1. `--endpoint-reconciler-type=none` because the only address it
 * could publish for the `kubernetes` Service is 127.0.0.1, which Endpoints reject.
 */
export function apiServerArgs(c: ClusterLayout): string[] {
  const f = c.files;
  return [
    `--etcd-servers=${c.etcdURL}`,
    `--etcd-prefix=${c.etcdPrefix}`,
    `--secure-port=${c.apiServerPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--cert-dir=${f.certDir}`,
    `--tls-cert-file=${f.serverCert}`,
    `--tls-private-key-file=${f.serverKey}`,
    `--client-ca-file=${f.caCert}`,
    `--token-auth-file=${f.tokenFile}`,
    '--authorization-mode=RBAC',
    '--anonymous-auth=true',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${f.serviceAccountPub}`,
    `--service-account-signing-key-file=${f.serviceAccountKey}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--endpoint-reconciler-type=none',
    '--allow-privileged=true',
    '--enable-priority-and-fairness=true',
    '--profiling=false',
    // On SIGTERM the server otherwise waits up to 60 s for its clients' watches to end; closing them after
    // a short drain makes a restart take seconds, like a rolling control-plane upgrade.
    '--shutdown-watch-termination-grace-period=2s',
  ];
}

/**
 * kube-controller-manager with every default controller (the DaemonSet, Deployment, ReplicaSet,
 * namespace, service-account, node-lifecycle and garbage-collector controllers matter here). Controllers
 * that need a cloud provider skip themselves when none is configured. No serving port, no leader election.
 */
export function controllerManagerArgs(c: ClusterLayout): string[] {
  const f = c.files;
  return [
    `--kubeconfig=${f.controllerManagerKubeconfig}`,
    '--leader-elect=false',
    '--secure-port=0',
    `--cluster-name=${c.name}`,
    '--controllers=*',
    `--service-account-private-key-file=${f.serviceAccountKey}`,
    `--root-ca-file=${f.caCert}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    // Pods of 50+ node DaemonSets and Deployments are created at the default 20 QPS; a bit more keeps tests short.
    '--kube-api-qps=50',
    '--kube-api-burst=100',
  ];
}

/** kube-scheduler: no serving port, no leader election. */
export function schedulerArgs(c: ClusterLayout): string[] {
  return [`--kubeconfig=${c.files.schedulerKubeconfig}`, '--leader-elect=false', '--secure-port=0', '--kube-api-qps=100', '--kube-api-burst=200'];
}

/**
 * The kwok stages a fleet uses, relative to the bin dir's `kwok-stages/`: nodes become Ready and renew
 * their Lease like a kubelet; pods become Running/Ready and complete (deletion: {@link REPO_KWOK_STAGES}).
 */
export const KWOK_STAGES = [
  'node/fast/node-initialize.yaml',
  'node/heartbeat-with-lease/node-heartbeat-with-lease.yaml',
  'pod/fast/pod-ready.yaml',
  'pod/fast/pod-complete.yaml',
];

/**
 * Stages of our own, absolute paths in the repository: pod deletion that keeps a pod Terminating for a
 * moment, as a kubelet does while it stops the containers (kwok's fast stage removes it at once).
 */
export const REPO_KWOK_STAGES = [fileURLToPath(new URL('./kwok/pod-delete-graceful.yaml', import.meta.url))];

/**
 * kwok managing every Node of the cluster. `--node-lease-duration-seconds` turns on Lease renewal; without
 * it the node-lifecycle controller marks every node NotReady after its grace period.
 */
export function kwokArgs(c: ClusterLayout, stagesDir: string): string[] {
  return [
    `--kubeconfig=${c.files.kwokKubeconfig}`,
    '--manage-all-nodes=true',
    `--cidr=${POD_CIDR}`,
    '--node-lease-duration-seconds=40',
    ...KWOK_STAGES.map((s) => `--config=${stagesDir}/${s}`),
    ...REPO_KWOK_STAGES.map((s) => `--config=${s}`),
  ];
}

/** CoreDNS reading its Corefile. */
export function coreDNSArgs(c: ClusterLayout): string[] {
  return [`-conf=${c.files.corefile}`];
}

/**
 * An out-of-cluster CoreDNS like a cluster's: the kubernetes plugin reads the API server through a
 * kubeconfig, answers for cluster.local and reverse zones; no `forward` (this machine has no upstream
 * resolver to use). Everything listens on 127.0.0.1 only.
 */
export function corefile(c: ClusterLayout, context: string): string {
  return `.:${c.dnsPort} {
    bind 127.0.0.1
    errors
    health 127.0.0.1:${c.dnsHealthPort}
    ready 127.0.0.1:${c.dnsReadyPort}
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        kubeconfig ${c.files.coreDNSKubeconfig} ${context}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus 127.0.0.1:${c.dnsMetricsPort}
    cache 30
}
`;
}

/** One line of kube-apiserver's `--token-auth-file`. */
export interface StaticToken {
  token: string;
  user: string;
  uid: string;
  groups: string[];
}

/**
 * The CSV kube-apiserver reads: `token,user,uid,"group1,group2"`. Rejects values that would break the
 * format (commas or quotes in names) instead of writing a file the server misreads.
 */
export function tokenFile(tokens: StaticToken[]): string {
  const bad = /[",\n]/;
  return (
    tokens
      .map((t) => {
        for (const v of [t.token, t.user, t.uid, ...t.groups]) {
          if (bad.test(v)) throw new Error(`static token entry for ${t.user}: value ${JSON.stringify(v)} contains a comma, quote or newline`);
        }
        return `${t.token},${t.user},${t.uid},"${t.groups.join(',')}"`;
      })
      .join('\n') + '\n'
  );
}

/**
 * A self-contained kubeconfig (CA data and bearer token embedded; nothing refers to other files), so it
 * can be stored in a Secret as is. Cluster, user and context names are distinct per cluster and user, so
 * several files can be merged through KUBECONFIG=a:b.
 */
export function kubeconfig(o: { cluster: string; server: string; caData: string; user: string; token: string; context: string }): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: o.cluster, cluster: { server: o.server, 'certificate-authority-data': o.caData } }],
    users: [{ name: o.user, user: { token: o.token } }],
    contexts: [{ name: o.context, context: { cluster: o.cluster, user: o.user } }],
    'current-context': o.context,
    preferences: {},
  });
}
