/**
 * The operator's side of break-glass: the reconciler's BreakGlassActuator and InventoryRecorder on top
 * of the transports and the inventory store. Inventories live in the rollout's namespace of the
 * management cluster, one per target cluster, so the stop files can be written while the target's API
 * server is down.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { BreakGlassStatus, TelemetryRollout } from '../api/types.generated.js';
import type { BreakGlassActuator, InventoryRecorder, NodeInfo } from '../rollout/interfaces.js';
import type { Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logging.js';
import { breakGlassStatus, clearBreakGlass, issueBreakGlass, KubeSecretReader, transportFromSpec, type SecretKeyReader } from './breakglass.js';
import { ConfigMapInventoryStore } from './configmapstore.js';
import { makeInventory, type InventoryStore } from './inventory.js';

/** Where inventories and ssh Secrets are read for a namespace. */
export interface BreakGlassBackends {
  inventory(namespace: string): InventoryStore;
  secrets(namespace: string): SecretKeyReader;
}

/** Backends on the management cluster: ConfigMap inventories and Secret-sourced ssh credentials. */
export function kubeBackends(kc: KubeConfig): BreakGlassBackends {
  const stores = new Map<string, InventoryStore>();
  return {
    inventory: (namespace) => {
      let s = stores.get(namespace);
      if (!s) stores.set(namespace, (s = new ConfigMapInventoryStore({ api: kc, namespace })));
      return s;
    },
    secrets: (namespace) => new KubeSecretReader(kc, namespace),
  };
}

const rolloutName = (r: TelemetryRollout) => `${r.metadata?.namespace ?? 'default'}/${r.metadata?.name ?? ''}`;

/** Implements the reconciler's break-glass and inventory hooks. Never throws: failures are status. */
export class TransportBreakGlass implements BreakGlassActuator, InventoryRecorder {
  private readonly backends: BreakGlassBackends;
  private readonly clock: Clock;
  private readonly logger?: Logger;
  constructor(backends: BreakGlassBackends, clock: Clock, logger?: Logger) {
    this.backends = backends;
    this.clock = clock;
    this.logger = logger;
  }

  available(rollout: TelemetryRollout): boolean {
    return rollout.spec.breakGlass.transport !== undefined;
  }

  async record(rollout: TelemetryRollout, cluster: string, nodes: NodeInfo[]): Promise<void> {
    try {
      await this.backends.inventory(rollout.metadata?.namespace ?? 'default').save(makeInventory(cluster, nodes, this.clock));
    } catch (err) {
      this.logger?.warn('saving the node inventory failed', { rollout: rolloutName(rollout), cluster, error: errorMessage(err) });
    }
  }

  async issue(rollout: TelemetryRollout, cluster: string, revision: string, reason: string): Promise<BreakGlassStatus> {
    const ns = rollout.metadata?.namespace ?? 'default';
    const spec = rollout.spec.breakGlass.transport;
    const issuedAt = this.clock.now().toISOString();
    if (!spec) return { issuedAt, revision, nodesTargeted: 0, nodesStopped: 0, nodesFailed: 0, nodesTimedOut: 0, message: 'no transport configured' };
    try {
      const inv = await this.backends.inventory(ns).load(cluster);
      if (!inv) return { issuedAt, revision, nodesTargeted: 0, nodesStopped: 0, nodesFailed: 0, nodesTimedOut: 0, message: `no node inventory of ${cluster}` };
      const transport = await transportFromSpec(spec, { secrets: this.backends.secrets(ns), clock: this.clock });
      try {
        const res = await issueBreakGlass({
          transport,
          nodes: inv.nodes,
          rollout: rolloutName(rollout),
          revision,
          reason,
          clock: this.clock,
          ...(this.logger ? { logger: this.logger } : {}),
        });
        return breakGlassStatus(res);
      } finally {
        await transport.close();
      }
    } catch (err) {
      return { issuedAt, revision, nodesTargeted: 0, nodesStopped: 0, nodesFailed: 0, nodesTimedOut: 0, message: `break-glass failed: ${errorMessage(err)}` };
    }
  }

  async clear(rollout: TelemetryRollout, cluster: string, revision: string): Promise<{ ok: boolean; message: string }> {
    const ns = rollout.metadata?.namespace ?? 'default';
    const spec = rollout.spec.breakGlass.transport;
    if (!spec) return { ok: true, message: 'no transport configured' };
    try {
      const inv = await this.backends.inventory(ns).load(cluster);
      if (!inv) return { ok: false, message: `no node inventory of ${cluster}` };
      const transport = await transportFromSpec(spec, { secrets: this.backends.secrets(ns), clock: this.clock });
      try {
        const res = await clearBreakGlass({ transport, nodes: inv.nodes, revision, clock: this.clock, ...(this.logger ? { logger: this.logger } : {}) });
        return { ok: res.nodesFailed === 0 && res.nodesTimedOut === 0, message: res.message };
      } finally {
        await transport.close();
      }
    } catch (err) {
      return { ok: false, message: `clearing failed: ${errorMessage(err)}` };
    }
  }
}
