/**
 * The stop ledger: which stops the operator has issued and not yet removed, per target cluster, in a
 * ConfigMap of the management cluster (`tro-stops-<cluster>`, one data key per rollout and revision).
 *
 * Why it exists: break-glass acts first and records afterwards (it must never wait for a write to the
 * management cluster). If the pass that issued a stop dies before its status write, and the API server
 * is back before another pass issues it again, status never learns of the stop; recovery would then
 * leave the agents stopped. The ledger is written alongside the fan-out (not before it), so a stop is
 * owed until it is cleared even across a restart, and recovery clears what the ledger holds as well as
 * what status says.
 */
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { isConflict, isNotFound, requestOptions } from '../controller/kube.js';
import type { ConfigMapApi } from './configmapstore.js';
import { clusterKey } from './inventory.js';

/** Name prefix of the ledger ConfigMaps. */
export const STOP_LEDGER_PREFIX = 'tro-stops';
/** Label on the ledger ConfigMaps: the cluster's key. */
export const STOP_LEDGER_CLUSTER_LABEL = 'telemetry.rollout.dev/stops-of';

/** The stops owed on one cluster: revision → issuedAt, for one rollout. */
export type OwedStops = Record<string, string>;

/** Where the operator keeps the stops it owes. */
export interface StopLedger {
  /** Notes a stop of `revision` issued at `issuedAt` on `cluster` by `rollout` (idempotent). */
  record(rollout: string, cluster: string, revision: string, issuedAt: string): Promise<void>;
  /** Forgets it once its files are removed (an absent entry is fine). */
  remove(rollout: string, cluster: string, revision: string): Promise<void>;
  /** The stops `rollout` owes on `cluster`. */
  owed(rollout: string, cluster: string): Promise<OwedStops>;
}

/** A data key: the rollout (`namespace/name`, with `/` as `.`), then the revision. */
const keyOf = (rollout: string, revision: string): string => `${rollout.replace('/', '.')}..${revision}`;

/** {@link StopLedger} in ConfigMaps (read-modify-write with the resourceVersion; retried on conflict). */
export class ConfigMapStopLedger implements StopLedger {
  private readonly api: ConfigMapApi;
  private readonly namespace: string;
  constructor(opts: { api: KubeConfig | ConfigMapApi; namespace: string }) {
    this.api = opts.api instanceof KubeConfig ? opts.api.makeApiClient(CoreV1Api) : opts.api;
    this.namespace = opts.namespace;
  }

  async record(rollout: string, cluster: string, revision: string, issuedAt: string): Promise<void> {
    await this.update(cluster, (data) => {
      if (data[keyOf(rollout, revision)] === issuedAt) return false;
      data[keyOf(rollout, revision)] = issuedAt;
      return true;
    });
  }

  async remove(rollout: string, cluster: string, revision: string): Promise<void> {
    await this.update(cluster, (data) => {
      if (!(keyOf(rollout, revision) in data)) return false;
      delete data[keyOf(rollout, revision)];
      return true;
    });
  }

  async owed(rollout: string, cluster: string): Promise<OwedStops> {
    const cm = await this.read(cluster);
    const prefix = `${rollout.replace('/', '.')}..`;
    const out: OwedStops = {};
    for (const [k, v] of Object.entries(cm?.data ?? {})) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
    return out;
  }

  private name(cluster: string): string {
    return `${STOP_LEDGER_PREFIX}-${clusterKey(cluster)}`;
  }

  private async read(cluster: string, signal?: AbortSignal): Promise<V1ConfigMap | undefined> {
    try {
      return await this.api.readNamespacedConfigMap({ name: this.name(cluster), namespace: this.namespace }, signal && requestOptions(signal));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Applies `change` to the data (it returns whether it changed anything), retrying on a conflict (409: stale, or created meanwhile). */
  private async update(cluster: string, change: (data: Record<string, string>) => boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const cm = await this.read(cluster);
      const data = { ...(cm?.data ?? {}) };
      if (!change(data)) return;
      try {
        if (cm === undefined) {
          await this.api.createNamespacedConfigMap({
            namespace: this.namespace,
            body: {
              metadata: { name: this.name(cluster), namespace: this.namespace, labels: { [STOP_LEDGER_CLUSTER_LABEL]: clusterKey(cluster) } },
              data,
            },
          });
        } else {
          await this.api.replaceNamespacedConfigMap({ name: this.name(cluster), namespace: this.namespace, body: { ...cm, data } });
        }
        return;
      } catch (err) {
        // Another writer (another rollout's stop on the same cluster) got there first: read again.
        if (isConflict(err) && attempt < 5) continue;
        throw err;
      }
    }
  }
}
