// Helpers for e2e tests against the fleet that jest's global setup started (e2e/jest/global-setup.ts).
//
//   const east = cluster('east');
//   const ns = await createNamespace(east, 'ds');            // each test gets its own namespace
//   await kubectl(east, ['apply', '-n', ns, '-f', '-'], { input: yaml });
//   const out = await kubectl(east, ['get', 'nodes', '--no-headers']);
//   it('...', dumpOnFailure(async () => { ... }));           // prints process logs and events if it throws
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { MANAGEMENT_CLUSTER } from './default-fleet.js';
import { attachFleet, type ClusterHandle, type Fleet } from './fleet.js';
import { waitUntil } from './net.js';

/** The env var holding the info file path of the run's fleet (set by the global setup). */
export const FLEET_INFO_ENV = 'TRO_E2E_FLEET_INFO';

/**
 * The kubectl the helpers run (always the real binary): env `KUBECTL`, else the kubectl that build.sh
 * built at the API servers' version (no version skew), else `kubectl` from PATH.
 */
export function kubectlBinary(): string {
  if (process.env.KUBECTL) return process.env.KUBECTL;
  const built = join(fleet().binDir, 'kubectl');
  return existsSync(built) ? built : 'kubectl';
}

let attached: Fleet | undefined;

/** The run's fleet, attached from the info file named by {@link FLEET_INFO_ENV}. Throws outside an e2e run. */
export function fleet(): Fleet {
  if (!attached) {
    const info = process.env[FLEET_INFO_ENV];
    if (!info) throw new Error(`${FLEET_INFO_ENV} is not set: run e2e tests through jest's e2e project (its global setup starts the fleet)`);
    attached = attachFleet(info);
  }
  return attached;
}

/** A cluster of the run's fleet by name (e.g. `mgmt`, `east`). */
export function cluster(name: string): ClusterHandle {
  return fleet().cluster(name);
}

/** The management cluster (`mgmt`). */
export function managementCluster(): ClusterHandle {
  return cluster(MANAGEMENT_CLUSTER);
}

/** Every cluster except the management cluster, in fleet order. */
export function targetClusters(): ClusterHandle[] {
  return fleet().clusters.filter((c) => c.name !== MANAGEMENT_CLUSTER);
}

/** What a kubectl run printed and how it ended. */
export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link kubectl} and {@link kubectlResult}. */
export interface KubectlOptions {
  /** Written to kubectl's stdin (for `-f -`). */
  input?: string;
  /** Run as this extra user (see StartFleetOptions.extraUsers) instead of the admin. */
  user?: string;
  /** Kill kubectl after this long (default 120 s). */
  timeoutMs?: number;
}

/**
 * Runs the real kubectl against `c` (its admin kubeconfig, or an extra user's) and resolves with the
 * exit code and output whatever the code: for tests that expect a rejection. Rejects only when kubectl
 * cannot be run or times out.
 */
export function kubectlResult(c: ClusterHandle, args: string[], o: KubectlOptions = {}): Promise<KubectlResult> {
  const kubeconfigPath = o.user === undefined ? c.kubeconfigPath : c.user(o.user).kubeconfigPath;
  return new Promise((resolve, reject) => {
    const child = execFile(
      kubectlBinary(),
      ['--kubeconfig', kubeconfigPath, ...args],
      {
        timeout: o.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, KUBECONFIG: kubeconfigPath },
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          reject(new Error(`kubectl ${args.join(' ')} (${c.name}): ${err.killed ? 'timed out' : err.message}`, { cause: err }));
          return;
        }
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
    else child.stdin?.end();
  });
}

/** Runs the real kubectl against `c` and resolves with stdout; rejects with stderr when it exits non-zero. */
export async function kubectl(c: ClusterHandle, args: string[], o: KubectlOptions = {}): Promise<string> {
  const r = await kubectlResult(c, args, o);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} (${c.name}) exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** `kubectl ... -o json`, parsed. */
export async function kubectlJSON<T = unknown>(c: ClusterHandle, args: string[], o: KubectlOptions = {}): Promise<T> {
  return JSON.parse(await kubectl(c, [...args, '-o', 'json'], o)) as T;
}

/** `kubectl apply -f -` of YAML text or objects (a list becomes a multi-document stream); resolves with kubectl's output. */
export async function apply(c: ClusterHandle, manifest: string | object | object[], o: KubectlOptions & { namespace?: string } = {}): Promise<string> {
  const text = typeof manifest === 'string' ? manifest : (Array.isArray(manifest) ? manifest : [manifest]).map((m) => stringify(m)).join('---\n');
  return kubectl(c, ['apply', ...(o.namespace ? ['-n', o.namespace] : []), '-f', '-'], { ...o, input: text });
}

/**
 * Creates a namespace `<prefix>-<random>` in `c` and waits until its `default` ServiceAccount exists (pods
 * are rejected before that). Each test should use its own namespace so tests do not interfere.
 */
export async function createNamespace(c: ClusterHandle, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`.toLowerCase();
  await kubectl(c, ['create', 'namespace', name]);
  const core = c.kubeConfig().makeApiClient(CoreV1Api);
  await waitUntil(
    `${c.name}: ServiceAccount ${name}/default`,
    async () => {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: name });
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  return name;
}

/** Deletes a namespace without waiting for its objects to go. */
export async function deleteNamespace(c: ClusterHandle, name: string): Promise<void> {
  await kubectl(c, ['delete', 'namespace', name, '--wait=false', '--ignore-not-found']);
}

/** Polls `check` until it returns a value (not undefined/false); see waitUntil. */
export function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 120_000,
  intervalMs = 500,
): Promise<T> {
  return waitUntil(what, check, { timeoutMs, intervalMs });
}

/**
 * Wraps a test body: when it throws, prints the last `lines` log lines of every fleet process and the
 * recent events of `clusters` (default: all) to stderr, then rethrows the original error.
 */
export function dumpOnFailure(fn: () => Promise<void>, o: { clusters?: string[]; lines?: number } = {}): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (err) {
      const f = fleet();
      process.stderr.write(`\n===== test failed: fleet logs (last ${o.lines ?? 40} lines each)\n${f.logs(o.lines ?? 40)}\n`);
      for (const c of (o.clusters ?? f.clusters.map((x) => x.name)).map((n) => f.cluster(n))) {
        try {
          const ev = await kubectlResult(c, ['get', 'events', '-A', '--sort-by=.lastTimestamp'], { timeoutMs: 15_000 });
          process.stderr.write(`===== ${c.name}: recent events\n${ev.stdout.split('\n').slice(-30).join('\n')}${ev.stderr}\n`);
        } catch (evErr) {
          process.stderr.write(`===== ${c.name}: events unavailable: ${evErr instanceof Error ? evErr.message : String(evErr)}\n`);
        }
      }
      throw err;
    }
  };
}
