/**
 * Cluster clients built from kubeconfig Secrets in the rollout's namespace: resolves `spec.targets` to
 * a list of targets and gives each target's {@link ClusterClient}, cached and rebuilt when its Secret's
 * kubeconfig changes.
 *
 * Every failure to get a client is a {@link ClusterUnavailableError} whose message names the cluster,
 * the Secret and the key, and what is wrong, and never contains the Secret's content.
 */
import { createHash } from 'node:crypto';
import type { KubeConfig, V1Secret } from '@kubernetes/client-node';
import type { TelemetryRollout } from '../api/types.generated.js';
import { ClusterUnavailableError, type ClusterClient, type ClusterClientFactory, type ResolvedTarget } from '../rollout/interfaces.js';
import { TerminalError } from '../util/errors.js';
import { KubeClusterClient, type KubeClusterClientOptions } from './kubeclient.js';
import { KubeconfigError, parseKubeconfig } from './kubeconfig.js';
import { matchesSelector, selectorString, validateSelector } from './selector.js';

/** The Secret label that names the cluster of a selected kubeconfig Secret (else the Secret's name is used). */
export const CLUSTER_NAME_LABEL = 'telemetry.rollout.dev/cluster-name';
/** The Secret data key read when none is given. */
export const DEFAULT_SECRET_KEY = 'value';

/** The reasons of the {@link ClusterUnavailableError}s the factory throws. */
export const ClusterUnavailableReason = {
  SecretNotFound: 'SecretNotFound',
  SecretKeyMissing: 'SecretKeyMissing',
  InvalidKubeconfig: 'InvalidKubeconfig',
  UnsupportedKubeconfig: 'UnsupportedKubeconfig',
} as const;

/**
 * Reads kubeconfig Secrets. The manager implements it on its Secret informer cache. Failures other than
 * "not found" reject (they are worth retrying).
 */
export interface SecretReader {
  /** The Secret, or undefined when it does not exist. */
  get(namespace: string, name: string): Promise<V1Secret | undefined>;
  /**
   * Secrets of a namespace. `labelSelector` (API string form) may be used to narrow the result; the
   * factory filters again, so returning a superset is fine.
   */
  list(namespace: string, labelSelector?: string): Promise<V1Secret[]>;
}

/** A client the factory can close when it replaces or drops it. */
export type ClosableClusterClient = ClusterClient & { close(): Promise<void> | void };

/** Options of {@link SecretClusterClientFactory}. */
export interface SecretClusterClientFactoryOptions {
  reader: SecretReader;
  /** Builds a client (default: a {@link KubeClusterClient} with `clientOptions`). */
  build?: (name: string, kc: KubeConfig) => ClosableClusterClient;
  /** Options of the default {@link KubeClusterClient}s (counter, timeouts, logger). */
  clientOptions?: KubeClusterClientOptions;
}

interface CacheEntry {
  client: ClosableClusterClient;
  /** sha256 of the kubeconfig text: a Secret update that leaves this key alone keeps the client (and its node cache). */
  digest: string;
  resourceVersion: string | undefined;
  /** `namespace/name` of the rollouts that asked for it. */
  users: Set<string>;
}

const rolloutKey = (r: TelemetryRollout) => `${r.metadata?.namespace ?? 'default'}/${r.metadata?.name ?? ''}`;
const byName = (a: ResolvedTarget, b: ResolvedTarget) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** See the file comment. */
export class SecretClusterClientFactory implements ClusterClientFactory {
  private readonly reader: SecretReader;
  private readonly build: (name: string, kc: KubeConfig) => ClosableClusterClient;
  private readonly cache = new Map<string, CacheEntry>();

  constructor(opts: SecretClusterClientFactoryOptions) {
    this.reader = opts.reader;
    this.build = opts.build ?? ((name, kc) => new KubeClusterClient(name, kc, opts.clientOptions));
  }

  /**
   * `spec.targets.clusters` in the order given (secret key default `value`), or the Secrets of the
   * rollout's namespace that `spec.targets.selector` selects, sorted by cluster name. A cluster is
   * named by the Secret's `telemetry.rollout.dev/cluster-name` label, else by the Secret's name. Two
   * Secrets naming the same cluster, or an invalid selector, are a {@link TerminalError}.
   */
  async resolveTargets(rollout: TelemetryRollout): Promise<ResolvedTarget[]> {
    const targets = rollout.spec.targets;
    if (targets.clusters !== undefined && targets.clusters.length > 0) {
      return targets.clusters.map((c) => ({
        name: c.name,
        secretName: c.kubeconfigSecretRef.name,
        secretKey: c.kubeconfigSecretRef.key || DEFAULT_SECRET_KEY,
        ...(c.metrics ? { metrics: { ...c.metrics } } : {}),
      }));
    }
    const sel = targets.selector;
    if (sel === undefined) return [];
    validateSelector(sel);
    const namespace = rollout.metadata?.namespace ?? 'default';
    const secrets = await this.reader.list(namespace, selectorString(sel));
    const out: ResolvedTarget[] = [];
    const seen = new Map<string, string>();
    for (const s of secrets) {
      const secretName = s.metadata?.name;
      if (secretName === undefined || !matchesSelector(s.metadata?.labels, sel)) continue;
      const name = s.metadata?.labels?.[CLUSTER_NAME_LABEL] || secretName;
      const other = seen.get(name);
      if (other !== undefined) {
        throw new TerminalError('DuplicateClusterName', `Secrets ${other} and ${secretName} in ${namespace} both name cluster ${name}`);
      }
      seen.set(name, secretName);
      out.push({ name, secretName, secretKey: sel.key || DEFAULT_SECRET_KEY });
    }
    return out.sort(byName);
  }

  /**
   * The target's client, from the cache when its Secret's kubeconfig is unchanged; otherwise a new one
   * (the old one is closed). Throws {@link ClusterUnavailableError}: SecretNotFound, SecretKeyMissing,
   * InvalidKubeconfig, UnsupportedKubeconfig (and then closes and forgets a client built from an
   * earlier version of the Secret).
   */
  async client(rollout: TelemetryRollout, target: ResolvedTarget): Promise<ClusterClient> {
    const namespace = rollout.metadata?.namespace ?? 'default';
    const key = target.secretKey || DEFAULT_SECRET_KEY;
    const where = `Secret ${namespace}/${target.secretName}`;
    const cacheKey = `${namespace}/${target.secretName}/${key}/${target.name}`;
    // A Secret that went away or went bad also ends the client built from its earlier content: its
    // credentials are no longer what the user wants used, and its node watch would run on for nothing.
    const unavailable = async (reason: string, problem: string): Promise<never> => {
      const stale = this.cache.get(cacheKey);
      if (stale) {
        this.cache.delete(cacheKey);
        await stale.client.close();
      }
      throw new ClusterUnavailableError(target.name, reason, `cluster ${target.name}: ${problem}`);
    };

    let secret: V1Secret | undefined;
    try {
      secret = await this.reader.get(namespace, target.secretName);
    } catch (cause) {
      throw new Error(`cluster ${target.name}: read kubeconfig ${where}`, { cause });
    }
    if (secret === undefined) return unavailable(ClusterUnavailableReason.SecretNotFound, `kubeconfig ${where} not found`);
    const encoded = secret.data?.[key];
    if (encoded === undefined || encoded === '') {
      const keys = Object.keys(secret.data ?? {}).sort();
      return unavailable(
        ClusterUnavailableReason.SecretKeyMissing,
        `${where} has no key ${JSON.stringify(key)}${keys.length > 0 ? ` (it has ${keys.map((k) => JSON.stringify(k)).join(', ')})` : ' (it has no data)'}`,
      );
    }
    const text = Buffer.from(encoded, 'base64').toString('utf8');
    const digest = createHash('sha256').update(text).digest('hex');
    const cached = this.cache.get(cacheKey);
    if (cached && cached.digest === digest) {
      cached.resourceVersion = secret.metadata?.resourceVersion;
      cached.users.add(rolloutKey(rollout));
      return cached.client;
    }

    let kc: KubeConfig;
    try {
      kc = parseKubeconfig(text);
    } catch (err) {
      if (err instanceof KubeconfigError) return unavailable(err.reason, `kubeconfig in ${where} key ${JSON.stringify(key)} ${err.message}`);
      // parseKubeconfig throws nothing else; if it ever does, do not let its message (maybe quoting input) out.
      return unavailable(ClusterUnavailableReason.InvalidKubeconfig, `kubeconfig in ${where} key ${JSON.stringify(key)} could not be read`);
    }
    const client = this.build(target.name, kc);
    this.cache.set(cacheKey, {
      client,
      digest,
      resourceVersion: secret.metadata?.resourceVersion,
      users: new Set([...(cached?.users ?? []), rolloutKey(rollout)]),
    });
    if (cached) await cached.client.close();
    return client;
  }

  /** Number of cached clients (for metrics and tests). */
  get size(): number {
    return this.cache.size;
  }

  /**
   * Forgets a rollout (it was deleted): closes the clients no other rollout uses, which stops their
   * node watches.
   */
  async release(namespace: string, name: string): Promise<void> {
    const who = `${namespace}/${name}`;
    for (const [k, e] of [...this.cache]) {
      e.users.delete(who);
      if (e.users.size === 0) {
        this.cache.delete(k);
        await e.client.close();
      }
    }
  }

  /** Closes every cached client (shutdown). */
  async close(): Promise<void> {
    const entries = [...this.cache.values()];
    this.cache.clear();
    await Promise.all(entries.map(async (e) => e.client.close()));
  }
}
