/**
 * What a kubelet gives a collector pod besides its config: the node's root filesystem (a directory
 * standing for it, with synthetic proc/ and sys/ and the break-glass stop file) and, with
 * `credentials: 'pod'`, the pod's own ServiceAccount credentials.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { writeFakeHostRoot } from '../../testkit/collector/node/fakehostroot.js';
import { STOP_DIRECTORY_IN_NODE, STOP_FILE_IN_NODE } from './api.js';
import type { DesiredAgent } from './pods.js';

/** The node roots under `rootDir` and the pods' credentials for the node runtime. */
export class PodEnvironment {
  private readonly rootDir: string;
  private readonly kubeConfig: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly rootsMade = new Map<string, Promise<void>>();
  /** Pod credentials: a kubeconfig per pod UID, with its token's expiry. */
  private readonly podKubeconfigs = new Map<string, { text: string; expires: number }>();

  /** `kubeConfig`: the agents' cluster (server and CA); `core`: the runtime's client, for TokenRequests. */
  constructor(rootDir: string, kubeConfig: KubeConfig, core: CoreV1Api) {
    this.rootDir = rootDir;
    this.kubeConfig = kubeConfig;
    this.core = core;
  }

  /** `<rootDir>/<node>`. */
  nodeRoot(node: string): string {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(node)) throw new Error(`not a node name: ${JSON.stringify(node)}`);
    return path.join(this.rootDir, node);
  }

  /** `<rootDir>/<node>/var/run/telemetry-rollout/stop` (the legacy single file). */
  stopFilePath(node: string): string {
    return path.join(this.nodeRoot(node), STOP_FILE_IN_NODE);
  }

  /** `<rootDir>/<node>/var/run/telemetry-rollout/stop.d`, the stop directory. */
  stopDirectory(node: string): string {
    return path.join(this.nodeRoot(node), STOP_DIRECTORY_IN_NODE);
  }

  /** Creates the node's root (synthetic proc/ and sys/, the stop file's directory) once. */
  ensureRoot(node: string): Promise<void> {
    let p = this.rootsMade.get(node);
    if (!p) {
      const root = this.nodeRoot(node);
      p = (async () => {
        await mkdir(path.dirname(path.join(root, STOP_FILE_IN_NODE)), { recursive: true });
        if (!existsSync(path.join(root, 'proc', 'stat'))) {
          // A per-node seed makes the nodes' numbers differ, like real machines.
          let seed = 0;
          for (const ch of node) seed = (seed * 31 + ch.charCodeAt(0)) % 10_000;
          await writeFakeHostRoot(root, seed);
        }
      })();
      this.rootsMade.set(node, p);
      p.catch(() => this.rootsMade.delete(node));
    }
    return p;
  }

  /**
   * The kubeconfig a kubelet would give the pod: the cluster's server and CA, and the pod's bound
   * ServiceAccount token (TokenRequest, one hour), or no user at all without automount (anonymous).
   */
  async podKubeconfig(d: DesiredAgent): Promise<string> {
    const cached = this.podKubeconfigs.get(d.id);
    if (cached && cached.expires > Date.now() + 600_000) return cached.text;
    const kc = this.kubeConfig;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the runtime kubeconfig has no current cluster');
    const caData = cluster.caData ?? (cluster.caFile ? (await readFile(cluster.caFile)).toString('base64') : undefined);
    let user: Record<string, string> = {};
    let expires = Number.MAX_SAFE_INTEGER;
    if (d.automountToken) {
      const tr = await this.core.createNamespacedServiceAccountToken({
        name: d.serviceAccount,
        namespace: d.namespace,
        body: { spec: { audiences: [], expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: d.pod, uid: d.id } } },
      });
      const token = tr.status?.token;
      if (!token) throw new Error(`TokenRequest for ${d.namespace}/${d.serviceAccount} returned no token`);
      user = { token };
      expires = tr.status?.expirationTimestamp ? new Date(tr.status.expirationTimestamp).getTime() : Date.now() + 3_600_000;
    }
    const text = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: cluster.server, ...(caData ? { 'certificate-authority-data': caData } : {}) } }],
      users: [{ name: 'pod', user }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'pod' } }],
      'current-context': 'c',
    });
    this.podKubeconfigs.set(d.id, { text, expires });
    return text;
  }
}
