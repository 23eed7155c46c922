/**
 * The collector revision: a deterministic hash of everything that defines what runs on a node (image,
 * pull policy, resources, config, namespace). Equal specs give equal revisions on every operator
 * replica and across restarts; any change gives a new revision, which is a new rollout.
 */
import { createHash } from 'node:crypto';
import type { CollectorSpec } from '../api/types.generated.js';

/** JSON with object keys sorted at every level, so that key order never changes a hash. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The revision of a (defaulted) collector spec: 10 hex characters of SHA-256, a valid label value. */
export function revisionOf(collector: CollectorSpec): string {
  const identity = {
    image: collector.image,
    imagePullPolicy: collector.imagePullPolicy,
    namespace: collector.namespace,
    resources: collector.resources ?? {},
    config: collector.config ?? {},
  };
  return createHash('sha256').update(canonicalJson(identity)).digest('hex').slice(0, 10);
}

/**
 * A label value naming a rollout (`namespace.name`); long names are shortened with a hash so the
 * value stays within the 63-character limit and stays unique.
 */
export function rolloutLabelValue(namespace: string, name: string): string {
  const full = `${namespace}.${name}`;
  if (full.length <= 63) return full;
  const h = createHash('sha256').update(full).digest('hex').slice(0, 8);
  return `${full.slice(0, 54).replace(/[-.]+$/, '')}-${h}`;
}
