/**
 * What the kubectl-tro e2e tests share: running the wrapper and other commands with their exit code and
 * output, kubeconfig variants in a test's own temp dir, and the rollouts they read.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { findRepoRoot } from '../../operator/src/api/crd.js';
import type { TelemetryRollout } from '../../operator/src/api/types.generated.js';
import { fixtureManifest, gateFailureStatus } from '../../testkit/operator/cli/fixtures.js';
import { kubectl, kubectlJSON, managementCluster } from '../controlplane/testing.js';

/** The repository root. */
export const ROOT = findRepoRoot();
/** The plugin's wrapper script, as a person runs it. */
export const WRAPPER = join(ROOT, 'operator', 'bin', 'kubectl-tro');
/** The management cluster of the shared fleet. */
export const mgmt = () => managementCluster();

/** A finished command: exit code and output. */
export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command and collects its exit code and output; stdout is a pipe, so no colour. */
export function exec(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(new Error(`${file} ${args.join(' ')}`, { cause: err }));
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

/** `kubectl-tro --kubeconfig <mgmt> -n <ns> ...args` through the wrapper. */
export function troIn(ns: string, args: string[], o: { kubeconfig?: string } = {}): Promise<Result> {
  return exec(WRAPPER, ['--kubeconfig', o.kubeconfig ?? mgmt().kubeconfigPath, '-n', ns, ...args]);
}

/** A copy of the management kubeconfig with `edit` applied, in `dir` (the test's private temp dir). */
export function kubeconfigVariant(
  dir: string,
  file: string,
  edit: (kc: { clusters: Array<{ cluster: { server: string } }>; users: Array<{ user: { token?: string } }> }) => void,
): string {
  const kc = parse(readFileSync(mgmt().kubeconfigPath, 'utf8')) as Parameters<typeof edit>[0];
  edit(kc);
  const path = join(dir, file);
  writeFileSync(path, stringify(kc), { mode: 0o600 });
  return path;
}

/** The annotations of a rollout. */
export const annotationsOf = async (ns: string, name: string) =>
  (await kubectlJSON<TelemetryRollout>(mgmt(), ['get', 'tro', name, '-n', ns])).metadata?.annotations ?? {};

/** Applies the fixture rollout `name` in `ns`, with the gate-failure status when `withStatus`. */
export async function createRollout(ns: string, name: string, withStatus: boolean): Promise<void> {
  await kubectl(mgmt(), ['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(fixtureManifest(name)) });
  if (withStatus) {
    await kubectl(mgmt(), ['patch', 'tro', name, '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: gateFailureStatus() })]);
  }
}
