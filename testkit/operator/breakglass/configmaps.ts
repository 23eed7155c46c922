/**
 * ConfigMaps in memory for unit tests of the stores kept in the management cluster (inventories, the
 * stop ledger), with the API server's rules that matter to them.
 */
import { ApiException, type V1ConfigMap, type V1ConfigMapList, type V1Status } from '@kubernetes/client-node';
import type { ConfigMapApi } from '../../../operator/src/breakglass/configmapstore.js';

const status404 = (name: string): ApiException<unknown> => new ApiException(404, `configmaps "${name}" not found`, { reason: 'NotFound', code: 404 }, {});

/**
 * ConfigMaps in memory with the API server's rules that matter here: 404/409, resourceVersion
 * preconditions, immutable objects, the 1 MiB data limit, label selectors. Counts calls by verb.
 */
export class FakeConfigMaps implements ConfigMapApi {
  readonly objects = new Map<string, V1ConfigMap>();
  readonly calls = { get: 0, create: 0, replace: 0, delete: 0, list: 0 };
  private rv = 1;
  /** Runs before a GET reads (to interleave a concurrent writer). */
  beforeGet: ((name: string) => Promise<void>) | undefined;
  /** Runs after a GET read, before it returns (the reader now holds a copy that may go stale). */
  afterGet: ((name: string) => Promise<void>) | undefined;

  writes(): number {
    return this.calls.create + this.calls.replace + this.calls.delete;
  }

  async readNamespacedConfigMap(p: { name: string; namespace: string }): Promise<V1ConfigMap> {
    this.calls.get++;
    await this.beforeGet?.(p.name);
    const cm = this.objects.get(p.name);
    if (cm === undefined) throw status404(p.name);
    const copy = structuredClone(cm);
    await this.afterGet?.(p.name);
    return copy;
  }

  async createNamespacedConfigMap(p: { namespace: string; body: V1ConfigMap }): Promise<V1ConfigMap> {
    this.calls.create++;
    const name = p.body.metadata!.name!;
    if (this.objects.has(name)) throw new ApiException(409, 'AlreadyExists', { reason: 'AlreadyExists', code: 409 }, {});
    this.checkSize(p.body);
    const cm = structuredClone(p.body);
    cm.metadata!.resourceVersion = String(this.rv++);
    this.objects.set(name, cm);
    return structuredClone(cm);
  }

  async replaceNamespacedConfigMap(p: { name: string; namespace: string; body: V1ConfigMap }): Promise<V1ConfigMap> {
    this.calls.replace++;
    const old = this.objects.get(p.name);
    if (old === undefined) throw status404(p.name);
    const want = p.body.metadata?.resourceVersion;
    if (want !== undefined && want !== old.metadata!.resourceVersion) throw new ApiException(409, 'Conflict', { reason: 'Conflict', code: 409 }, {});
    if (old.immutable) throw new ApiException(422, 'field is immutable', { reason: 'Invalid', code: 422 }, {});
    this.checkSize(p.body);
    const cm = structuredClone(p.body);
    cm.metadata!.resourceVersion = String(this.rv++);
    this.objects.set(p.name, cm);
    return structuredClone(cm);
  }

  async deleteNamespacedConfigMap(p: { name: string; namespace: string }): Promise<V1Status> {
    this.calls.delete++;
    if (!this.objects.delete(p.name)) throw status404(p.name);
    return {};
  }

  async listNamespacedConfigMap(p: { namespace: string; labelSelector?: string }): Promise<V1ConfigMapList> {
    this.calls.list++;
    const want = (p.labelSelector ?? '')
      .split(',')
      .filter((s) => s !== '')
      .map((s) => s.split('=') as [string, string]);
    const items = [...this.objects.values()].filter((cm) => want.every(([k, v]) => cm.metadata?.labels?.[k] === v));
    return { items: structuredClone(items) };
  }

  /** The API server's limit: data plus binaryData (decoded) at most 1 MiB. */
  private checkSize(cm: V1ConfigMap): void {
    let size = 0;
    for (const [k, v] of Object.entries(cm.data ?? {})) size += k.length + v.length;
    for (const [k, v] of Object.entries(cm.binaryData ?? {})) size += k.length + Buffer.from(v, 'base64').length;
    if (size > 1024 * 1024) throw new ApiException(422, 'ConfigMap too long', { reason: 'Invalid', code: 422 }, {});
  }
}
