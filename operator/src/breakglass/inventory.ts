/**
 * The node inventory of a target cluster: what break-glass needs to reach its nodes when the cluster's
 * API server is gone (names, addresses, and the labels that matter, the revision label above all).
 *
 * It is captured while the cluster is healthy and persisted in the MANAGEMENT cluster (not the target,
 * whose API server is exactly what will be missing), and it can be exported to a file that a person
 * keeps for the CLI, which then needs no API server at all.
 *
 * Storage in the management cluster: `ConfigMapInventoryStore` (configmapstore.ts); tests use an
 * in-memory store.
 *
 * Writes happen only when the content changed (compared by hash, `capturedAt` excluded): steady state
 * makes no writes. Consequently the stored `capturedAt` is when the current content was first seen;
 * the inventory is still correct at any later time the cluster was healthy and the operator running.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { canonicalJson } from '../rollout/revision.js';
import type { NodeInfo } from '../rollout/interfaces.js';
import type { Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import { writeFileAtomic } from './stopfile.js';

/** apiVersion of an inventory file. */
export const INVENTORY_API_VERSION = 'telemetry.rollout.dev/v1alpha1';
/** kind of an inventory file. */
export const INVENTORY_KIND = 'NodeInventory';

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
      .map((n) => ({
        name: n.name,
        labels: { ...n.labels },
        addresses: n.addresses.map((a) => ({ type: a.type, address: a.address })),
        ready: n.ready,
        ...(n.runs?.length ? { runs: [...n.runs].sort() } : {}),
      }))
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
    // The revisions seen running count: a watcher moving to another node changes who must be stopped.
    .map((n) => ({ name: n.name, labels: n.labels, addresses: n.addresses, runs: [...(n.runs ?? [])].sort() }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return createHash('sha256')
    .update(canonicalJson({ cluster: inv.cluster, nodes }))
    .digest('hex');
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
    const runs = n.runs ?? [];
    if (!Array.isArray(runs) || !runs.every((r) => typeof r === 'string' && r !== '')) fail(`node ${n.name}: "runs" must be a list of revisions`);
    return {
      name: n.name,
      labels: { ...(labels as Record<string, string>) },
      addresses: (addresses as Array<{ type: string; address: string }>).map((a) => ({ type: a.type, address: a.address })),
      ready: n.ready === true,
      ...((runs as string[]).length ? { runs: [...(runs as string[])].sort() } : {}),
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

/**
 * A label value and name segment for a cluster: the name itself when it is a short DNS label,
 * otherwise a sanitised prefix plus a hash of the full name (so distinct clusters never collide).
 */
export function clusterKey(cluster: string): string {
  if (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(cluster) && cluster.length <= 40) return cluster;
  const h = createHash('sha256').update(cluster).digest('hex').slice(0, 8);
  const slug = cluster
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 30)
    .replace(/-+$/, '');
  return slug === '' ? `c-${h}` : `${slug}-${h}`;
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
