/**
 * The node inventory of a target cluster: what break-glass needs to reach its nodes when the cluster's
 * API server is gone (names, addresses, and the labels that matter, the revision label above all).
 *
 * It is captured while the cluster is healthy and persisted in the MANAGEMENT cluster (not the target,
 * whose API server is exactly what will be missing), and it can be exported to a file that a person
 * keeps for the CLI, which then needs no API server at all.
 *
 * Storage ({@link ConfigMapInventoryStore}): gzip-compressed JSON in ConfigMap `binaryData`. One
 * ConfigMap `<prefix>-<cluster>` (the head) holds the metadata and the first chunk; an inventory that
 * does not fit (a ConfigMap holds under 1 MiB) continues in immutable, content-addressed chunk
 * ConfigMaps `<prefix>-<cluster>-<hash>-<i>` that the head lists. Chunks are written before the head and
 * old ones removed after it, so a reader always finds a complete inventory (at worst it rereads once).
 * Thousands of nodes compress to a few hundred KiB, so in practice there is one ConfigMap per cluster.
 *
 * Writes happen only when the content changed (compared by hash, `capturedAt` excluded): steady state
 * makes no writes. Consequently the stored `capturedAt` is when the current content was first seen;
 * the inventory is still correct at any later time the cluster was healthy and the operator running.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { isConflict, isNotFound, requestOptions } from '../controller/kube.js';
import { canonicalJson } from '../rollout/revision.js';
import type { NodeInfo } from '../rollout/interfaces.js';
import type { Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import { writeFileAtomic } from './stopfile.js';

/** apiVersion of an inventory file. */
export const INVENTORY_API_VERSION = 'telemetry.rollout.dev/v1alpha1';
/** kind of an inventory file. */
export const INVENTORY_KIND = 'NodeInventory';
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

/** The node inventory of one cluster. */
export interface NodeInventory {
  /** The target cluster's name in the rollout. */
  cluster: string;
  /** When this content was captured (RFC 3339). */
  capturedAt: string;
  /** The nodes, sorted by name. */
  nodes: NodeInfo[];
}

/**
 * Builds an inventory from the nodes as the cluster client reports them: sorted by name, only the
 * fields break-glass uses, `capturedAt` from the clock.
 */
export function makeInventory(cluster: string, nodes: readonly NodeInfo[], clock: Clock): NodeInventory {
  return {
    cluster,
    capturedAt: clock.now().toISOString(),
    nodes: [...nodes]
      .map((n) => ({ name: n.name, labels: { ...n.labels }, addresses: n.addresses.map((a) => ({ type: a.type, address: a.address })), ready: n.ready }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  };
}

/**
 * The hash that decides whether an inventory changed: SHA-256 of the canonical JSON of the cluster
 * name and the nodes sorted by name (key order and node order do not matter; `capturedAt` does not
 * count, neither does `ready`, which flaps and is not used by break-glass).
 */
export function inventoryHash(inv: Pick<NodeInventory, 'cluster' | 'nodes'>): string {
  const nodes = [...inv.nodes]
    .map((n) => ({ name: n.name, labels: n.labels, addresses: n.addresses }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return createHash('sha256').update(canonicalJson({ cluster: inv.cluster, nodes })).digest('hex');
}

/** An inventory whose shape is wrong (a hand-edited file, a corrupt ConfigMap). */
export class InventoryFormatError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'InventoryFormatError';
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks and normalises a parsed inventory (`source` names where it came from, for the message).
 * Lenient where a person writing a file by hand would be: `labels` defaults to `{}`, `ready` to false.
 */
export function validateInventory(value: unknown, source: string): NodeInventory {
  const fail = (what: string): never => {
    throw new InventoryFormatError(`${source}: ${what}`);
  };
  if (!isRecord(value)) return fail('not an object');
  if (value.kind !== undefined && value.kind !== INVENTORY_KIND) fail(`kind must be ${INVENTORY_KIND}, got ${JSON.stringify(value.kind)}`);
  if (typeof value.cluster !== 'string' || value.cluster === '') fail('"cluster" must be a non-empty string');
  const capturedAt = value.capturedAt instanceof Date ? value.capturedAt.toISOString() : value.capturedAt;
  if (typeof capturedAt !== 'string' || Number.isNaN(Date.parse(capturedAt))) fail('"capturedAt" must be a timestamp');
  if (!Array.isArray(value.nodes)) return fail('"nodes" must be a list');
  const seen = new Set<string>();
  const nodes = value.nodes.map((n: unknown, i): NodeInfo => {
    if (!isRecord(n) || typeof n.name !== 'string' || n.name === '') return fail(`nodes[${i}]: "name" must be a non-empty string`);
    if (seen.has(n.name)) fail(`nodes[${i}]: duplicate node ${n.name}`);
    seen.add(n.name);
    const labels = n.labels ?? {};
    if (!isRecord(labels) || !Object.values(labels).every((v) => typeof v === 'string')) fail(`node ${n.name}: "labels" must map strings to strings`);
    const addresses = n.addresses ?? [];
    if (!Array.isArray(addresses) || !addresses.every((a) => isRecord(a) && typeof a.type === 'string' && typeof a.address === 'string')) {
      fail(`node ${n.name}: "addresses" must be a list of {type, address}`);
    }
    if (n.ready !== undefined && typeof n.ready !== 'boolean') fail(`node ${n.name}: "ready" must be a boolean`);
    return {
      name: n.name,
      labels: { ...(labels as Record<string, string>) },
      addresses: (addresses as Array<{ type: string; address: string }>).map((a) => ({ type: a.type, address: a.address })),
      ready: n.ready === true,
    };
  });
  return { cluster: value.cluster as string, capturedAt: new Date(capturedAt as string).toISOString(), nodes };
}

/** The inventory as compressed bytes (gzip of its JSON), as stored in ConfigMaps. */
export function encodeInventory(inv: NodeInventory): Buffer {
  return gzipSync(JSON.stringify({ apiVersion: INVENTORY_API_VERSION, kind: INVENTORY_KIND, ...inv }), { level: 9 });
}

/** Inverse of {@link encodeInventory}; throws {@link InventoryFormatError}. */
export function decodeInventory(bytes: Buffer, source: string): NodeInventory {
  let value: unknown;
  try {
    value = JSON.parse(gunzipSync(bytes).toString('utf8'));
  } catch (err) {
    throw new InventoryFormatError(`${source}: not gzip-compressed JSON`, { cause: err });
  }
  return validateInventory(value, source);
}

/** What {@link InventoryStore.save} did. */
export interface SaveResult {
  /** Whether anything was written (false: the stored content was already the same). */
  written: boolean;
  /** {@link inventoryHash} of the inventory. */
  hash: string;
  /** Compressed size, when written. */
  bytes?: number;
  /** ConfigMaps the inventory occupies, when written. */
  objects?: number;
  /**
   * Set when the inventory was saved but chunks of an older one could not be removed (they are
   * harmless and are removed by the next save that writes); reported rather than thrown because the
   * save itself succeeded.
   */
  cleanupError?: Error;
}

/** Where inventories are kept. */
export interface InventoryStore {
  /** The stored inventory of `cluster`, or undefined when there is none. */
  load(cluster: string, signal?: AbortSignal): Promise<NodeInventory | undefined>;
  /** Stores `inv` unless the stored one has the same {@link inventoryHash}. */
  save(inv: NodeInventory, signal?: AbortSignal): Promise<SaveResult>;
  /** Removes the inventory of `cluster`; an absent one is not an error. */
  delete(cluster: string, signal?: AbortSignal): Promise<void>;
}

/** An in-memory store (unit tests, the fleet simulator); counts its writes. */
export class MemoryInventoryStore implements InventoryStore {
  /** Number of saves that wrote. */
  writes = 0;
  private readonly items = new Map<string, { inv: NodeInventory; hash: string }>();

  async load(cluster: string): Promise<NodeInventory | undefined> {
    const item = this.items.get(cluster);
    return item === undefined ? undefined : structuredClone(item.inv);
  }

  async save(inv: NodeInventory): Promise<SaveResult> {
    const hash = inventoryHash(inv);
    if (this.items.get(inv.cluster)?.hash === hash) return { written: false, hash };
    this.items.set(inv.cluster, { inv: structuredClone(inv), hash });
    this.writes++;
    return { written: true, hash, objects: 1 };
  }

  async delete(cluster: string): Promise<void> {
    this.items.delete(cluster);
  }
}

/**
 * A label value and name segment for a cluster: the name itself when it is a short DNS label,
 * otherwise a sanitised prefix plus a hash of the full name (so distinct clusters never collide).
 */
export function clusterKey(cluster: string): string {
  if (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(cluster) && cluster.length <= 40) return cluster;
  const h = createHash('sha256').update(cluster).digest('hex').slice(0, 8);
  const slug = cluster.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+/, '').slice(0, 30).replace(/-+$/, '');
  return slug === '' ? `c-${h}` : `${slug}-${h}`;
}

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

/** Options of {@link exportInventory}. */
export interface ExportOptions {
  /** File format; default from the extension (`.yaml`/`.yml`: YAML, else JSON). */
  format?: 'json' | 'yaml';
}

/**
 * Writes an inventory file for offline use by the CLI (`kind: NodeInventory`), atomically (a reader
 * never sees half a file). Node addresses are not secret, but the file describes the fleet: keep it
 * where the on-call runbook says.
 */
export async function exportInventory(inv: NodeInventory, path: string, opts: ExportOptions = {}): Promise<void> {
  const format = opts.format ?? (['.yaml', '.yml'].includes(extname(path).toLowerCase()) ? 'yaml' : 'json');
  const doc = { apiVersion: INVENTORY_API_VERSION, kind: INVENTORY_KIND, cluster: inv.cluster, capturedAt: inv.capturedAt, nodes: inv.nodes };
  const text = format === 'yaml' ? stringifyYaml(doc) : `${JSON.stringify(doc, null, 2)}\n`;
  await writeFileAtomic(path, text);
}

/** Reads an inventory file written by {@link exportInventory} (JSON or YAML), validated. */
export async function loadInventoryFile(path: string): Promise<NodeInventory> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`read inventory file ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err });
  }
  let value: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both formats.
    value = parseYaml(text);
  } catch (err) {
    throw new InventoryFormatError(`inventory file ${path}: not JSON or YAML: ${errorMessage(err)}`, { cause: err });
  }
  return validateInventory(value, `inventory file ${path}`);
}
