/**
 * Node inventories kept in ConfigMaps of the management cluster ({@link ConfigMapInventoryStore}; the
 * inventory itself, its encoding and the other store are in inventory.ts).
 *
 * Storage: gzip-compressed JSON in ConfigMap `binaryData`. One ConfigMap `<prefix>-<cluster>` (the head)
 * holds the metadata and the first chunk; an inventory that does not fit (a ConfigMap holds under 1 MiB)
 * continues in immutable, content-addressed chunk ConfigMaps `<prefix>-<cluster>-<hash>-<i>` that the
 * head lists. Chunks are written before the head and old ones removed after it, so a reader always finds
 * a complete inventory (at worst it rereads once). Thousands of nodes compress to a few hundred KiB, so
 * in practice there is one ConfigMap per cluster.
 */
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { isConflict, isNotFound, requestOptions } from '../controller/kube.js';
import { errorMessage } from '../util/errors.js';
import {
  clusterKey,
  decodeInventory,
  encodeInventory,
  InventoryFormatError,
  inventoryHash,
  type InventoryStore,
  type NodeInventory,
  type SaveResult,
} from './inventory.js';

/** Default name prefix of the inventory ConfigMaps. */
export const INVENTORY_NAME_PREFIX = 'tro-inventory';
/** Label on every inventory ConfigMap: the cluster key (see {@link clusterKey}). */
export const INVENTORY_CLUSTER_LABEL = 'telemetry.rollout.dev/inventory-cluster';
/** Label on every inventory ConfigMap: `head` or `chunk`. */
export const INVENTORY_PART_LABEL = 'telemetry.rollout.dev/inventory-part';
/** Label on chunk ConfigMaps: the short hash of the inventory they belong to. */
export const INVENTORY_HASH_LABEL = 'telemetry.rollout.dev/inventory-hash';
/** Annotation on the head ConfigMap: the full hash of the stored inventory. */
export const INVENTORY_HASH_ANNOTATION = 'telemetry.rollout.dev/inventory-hash';
/**
 * Raw (compressed) bytes per ConfigMap. The API server limits a ConfigMap's data to 1 MiB and the
 * stored object (base64 in JSON on the way) to about 1.5 MiB in etcd; 512 KiB leaves room for both.
 */
export const DEFAULT_CHUNK_BYTES = 512 * 1024;

/** The ConfigMap calls the store makes (client-node's CoreV1Api fits). */
export type ConfigMapApi = Pick<
  CoreV1Api,
  'readNamespacedConfigMap' | 'createNamespacedConfigMap' | 'replaceNamespacedConfigMap' | 'deleteNamespacedConfigMap' | 'listNamespacedConfigMap'
>;

/** Options of {@link ConfigMapInventoryStore}. */
export interface ConfigMapInventoryStoreOptions {
  /** A management-cluster KubeConfig, or the API object (tests pass a fake). */
  api: KubeConfig | ConfigMapApi;
  /** The namespace the inventories live in (the operator's). */
  namespace: string;
  /** Name prefix (default {@link INVENTORY_NAME_PREFIX}). */
  namePrefix?: string;
  /** Compressed bytes per ConfigMap (default {@link DEFAULT_CHUNK_BYTES}). */
  chunkBytes?: number;
}

const DATA_KEY = 'inventory.json.gz';
const META_CLUSTER = 'cluster';
const META_CAPTURED = 'capturedAt';
const META_HASH = 'hash';
const META_NODES = 'nodes';
const META_CHUNKS = 'chunks';

/**
 * Inventories in ConfigMaps of the management cluster (layout in the module comment). Remembers the
 * hash it last wrote or read per cluster, so an unchanged inventory costs no API call at all; after a
 * restart the first save costs one GET.
 */
export class ConfigMapInventoryStore implements InventoryStore {
  private readonly api: ConfigMapApi;
  private readonly namespace: string;
  private readonly prefix: string;
  private readonly chunkBytes: number;
  private readonly known = new Map<string, string>();

  constructor(opts: ConfigMapInventoryStoreOptions) {
    this.api = opts.api instanceof KubeConfig ? opts.api.makeApiClient(CoreV1Api) : opts.api;
    this.namespace = opts.namespace;
    this.prefix = opts.namePrefix ?? INVENTORY_NAME_PREFIX;
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isInteger(this.chunkBytes) || this.chunkBytes < 1 || this.chunkBytes > 768 * 1024) {
      throw new RangeError(`chunkBytes must be within 1..786432, got ${this.chunkBytes}`);
    }
  }

  /** The head ConfigMap's name for `cluster`. */
  headName(cluster: string): string {
    return `${this.prefix}-${clusterKey(cluster)}`;
  }

  async load(cluster: string, signal?: AbortSignal): Promise<NodeInventory | undefined> {
    // One retry: a concurrent save may replace the head and remove the chunks we were about to read.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.loadOnce(cluster, signal);
      } catch (err) {
        if (attempt === 0 && err instanceof StaleChunkError) continue;
        throw new Error(`load inventory of cluster ${cluster} from ConfigMap ${this.namespace}/${this.headName(cluster)}`, { cause: err });
      }
    }
  }

  async save(inv: NodeInventory, signal?: AbortSignal): Promise<SaveResult> {
    const hash = inventoryHash(inv);
    if (this.known.get(inv.cluster) === hash) return { written: false, hash };
    const headName = this.headName(inv.cluster);
    const key = clusterKey(inv.cluster);
    try {
      const head = await this.get(headName, signal);
      if (head !== undefined && head.metadata?.annotations?.[INVENTORY_HASH_ANNOTATION] === hash && head.data?.[META_CLUSTER] === inv.cluster) {
        this.known.set(inv.cluster, hash);
        return { written: false, hash };
      }
      if (head !== undefined && head.data?.[META_CLUSTER] !== undefined && head.data[META_CLUSTER] !== inv.cluster) {
        throw new Error(`ConfigMap ${this.namespace}/${headName} holds the inventory of another cluster (${head.data[META_CLUSTER]})`);
      }

      const bytes = encodeInventory(inv);
      const parts: Buffer[] = [];
      for (let off = 0; off < bytes.length; off += this.chunkBytes) parts.push(bytes.subarray(off, off + this.chunkBytes));
      const short = hash.slice(0, 12);
      const chunkNames = parts.slice(1).map((_, i) => `${headName}-${short}-${i + 1}`);
      for (const [i, name] of chunkNames.entries()) {
        const body: V1ConfigMap = {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name, namespace: this.namespace, labels: { ...this.labels(key, 'chunk'), [INVENTORY_HASH_LABEL]: short } },
          binaryData: { [DATA_KEY]: parts[i + 1]!.toString('base64') },
          // Content-addressed: the same name always holds the same bytes.
          immutable: true,
        };
        try {
          await this.api.createNamespacedConfigMap({ namespace: this.namespace, body }, signal && requestOptions(signal));
        } catch (err) {
          // Already there from an earlier, interrupted save of this very content.
          if (!isConflict(err)) throw new Error(`create ConfigMap ${this.namespace}/${name}`, { cause: err });
        }
      }

      const body: V1ConfigMap = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: headName,
          namespace: this.namespace,
          labels: this.labels(key, 'head'),
          annotations: { [INVENTORY_HASH_ANNOTATION]: hash },
          // Optimistic concurrency: two writers (an old leader, a CLI) cannot silently overwrite each other.
          resourceVersion: head?.metadata?.resourceVersion,
        },
        data: {
          [META_CLUSTER]: inv.cluster,
          [META_CAPTURED]: inv.capturedAt,
          [META_HASH]: hash,
          [META_NODES]: String(inv.nodes.length),
          [META_CHUNKS]: chunkNames.join(','),
        },
        binaryData: { [DATA_KEY]: parts[0]?.toString('base64') ?? '' },
      };
      if (head === undefined) {
        await this.api.createNamespacedConfigMap({ namespace: this.namespace, body }, signal && requestOptions(signal)).catch((err: unknown) => {
          throw new Error(`create ConfigMap ${this.namespace}/${headName}`, { cause: err });
        });
      } else {
        await this.api
          .replaceNamespacedConfigMap({ name: headName, namespace: this.namespace, body }, signal && requestOptions(signal))
          .catch((err: unknown) => {
            throw new Error(`replace ConfigMap ${this.namespace}/${headName}`, { cause: err });
          });
      }
      this.known.set(inv.cluster, hash);

      const result: SaveResult = { written: true, hash, bytes: bytes.length, objects: 1 + chunkNames.length };
      try {
        await this.deleteChunks(key, new Set(chunkNames), signal);
      } catch (err) {
        result.cleanupError = err as Error;
      }
      return result;
    } catch (err) {
      this.known.delete(inv.cluster);
      throw new Error(`save inventory of cluster ${inv.cluster} (${inv.nodes.length} nodes) to ConfigMap ${this.namespace}/${headName}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  async delete(cluster: string, signal?: AbortSignal): Promise<void> {
    const headName = this.headName(cluster);
    try {
      await this.api.deleteNamespacedConfigMap({ name: headName, namespace: this.namespace }, signal && requestOptions(signal));
    } catch (err) {
      if (!isNotFound(err)) throw new Error(`delete ConfigMap ${this.namespace}/${headName}`, { cause: err });
    }
    this.known.delete(cluster);
    await this.deleteChunks(clusterKey(cluster), new Set(), signal);
  }

  private labels(key: string, part: 'head' | 'chunk'): Record<string, string> {
    return { 'app.kubernetes.io/managed-by': 'telemetry-rollout', [INVENTORY_CLUSTER_LABEL]: key, [INVENTORY_PART_LABEL]: part };
  }

  private async get(name: string, signal?: AbortSignal): Promise<V1ConfigMap | undefined> {
    try {
      return await this.api.readNamespacedConfigMap({ name, namespace: this.namespace }, signal && requestOptions(signal));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new Error(`get ConfigMap ${this.namespace}/${name}`, { cause: err });
    }
  }

  /** Removes this cluster's chunk ConfigMaps except `keep`. */
  private async deleteChunks(key: string, keep: Set<string>, signal?: AbortSignal): Promise<void> {
    const list = await this.api
      .listNamespacedConfigMap(
        { namespace: this.namespace, labelSelector: `${INVENTORY_CLUSTER_LABEL}=${key},${INVENTORY_PART_LABEL}=chunk` },
        signal && requestOptions(signal),
      )
      .catch((err: unknown) => {
        throw new Error(`list inventory chunks in ${this.namespace}`, { cause: err });
      });
    for (const cm of list.items) {
      const name = cm.metadata?.name;
      if (name === undefined || keep.has(name)) continue;
      try {
        await this.api.deleteNamespacedConfigMap({ name, namespace: this.namespace }, signal && requestOptions(signal));
      } catch (err) {
        if (!isNotFound(err)) throw new Error(`delete ConfigMap ${this.namespace}/${name}`, { cause: err });
      }
    }
  }

  private async loadOnce(cluster: string, signal?: AbortSignal): Promise<NodeInventory | undefined> {
    const headName = this.headName(cluster);
    const head = await this.get(headName, signal);
    if (head === undefined) return undefined;
    const stored = head.data?.[META_CLUSTER];
    if (stored !== cluster) throw new InventoryFormatError(`ConfigMap ${headName} holds the inventory of ${JSON.stringify(stored)}, not ${cluster}`);
    const first = head.binaryData?.[DATA_KEY];
    if (first === undefined) throw new InventoryFormatError(`ConfigMap ${headName} has no binaryData.${DATA_KEY}`);
    const parts = [Buffer.from(first, 'base64')];
    const chunkNames = (head.data?.[META_CHUNKS] ?? '').split(',').filter((s) => s !== '');
    for (const name of chunkNames) {
      const cm = await this.get(name, signal);
      const data = cm?.binaryData?.[DATA_KEY];
      if (data === undefined) throw new StaleChunkError(`chunk ConfigMap ${name} is missing`);
      parts.push(Buffer.from(data, 'base64'));
    }
    const bytes = Buffer.concat(parts);
    let inv: NodeInventory;
    try {
      inv = decodeInventory(bytes, `ConfigMap ${this.namespace}/${headName}`);
    } catch (err) {
      // Chunks of a newer save paired with an older head (or the reverse) do not decompress.
      if (chunkNames.length > 0) throw new StaleChunkError('inventory chunks do not match the head', { cause: err });
      throw err;
    }
    const hash = inventoryHash(inv);
    if (head.data?.[META_HASH] !== undefined && head.data[META_HASH] !== hash) {
      throw new InventoryFormatError(`ConfigMap ${headName}: content does not match its recorded hash`);
    }
    this.known.set(cluster, hash);
    return inv;
  }
}

/** A chunk that vanished or does not fit the head: a concurrent save; the load is retried once. */
class StaleChunkError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StaleChunkError';
  }
}
