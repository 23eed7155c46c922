/**
 * What the break-glass benchmark's rounds share: node lists, the exec transport's command for a
 * machine where every node is a directory, where each node's stop file lands on disk, and the CRD's
 * default transport concurrency (read from the CRD, so the figures follow the default if it changes).
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { rolloutSchema, type SchemaNode } from '../../operator/src/api/crd.js';
import { LEFT_IN_PLACE_MARKER } from '../../operator/src/breakglass/ssh.js';
import type { NodeTarget } from '../../operator/src/breakglass/transport.js';
import type { NodeInfo } from '../../operator/src/rollout/interfaces.js';

/** `n` nodes named `node-00000`… on 127.0.0.1 (the loopback sshd stands for all of them). */
export function benchNodes(n: number, revision = 'bench000000'): NodeInfo[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `node-${String(i).padStart(5, '0')}`,
    labels: { 'telemetry.rollout.dev/revision': revision },
    addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
    ready: true,
  }));
}

/**
 * The shell script the exec rounds run once per node, as the exec transport's contract asks: `$1` is the
 * stop file's path, `$2` the action; a write puts stdin there atomically (temp file in the same directory,
 * then rename); a clear removes it, and with `TRO_IF_REVISION` set only when the file names that revision
 * (otherwise it prints the left-in-place marker and succeeds).
 */
export const EXEC_SCRIPT = [
  'p="$1"',
  'if [ "$2" = clear ]; then',
  '  [ -e "$p" ] || exit 0',
  `  if [ -n "$TRO_IF_REVISION" ] && ! grep -qF "\\"revision\\":\\"$TRO_IF_REVISION\\"" "$p"; then echo ${LEFT_IN_PLACE_MARKER}; exit 0; fi`,
  '  exec rm -f -- "$p"',
  'fi',
  'mkdir -p -- "$(dirname -- "$p")" && cat > "$p.tmp.$$" && mv -f -- "$p.tmp.$$" "$p"',
].join('\n');

/**
 * The exec transport's argv template for nodes that are directories under `rootDir`: `sh -c` with
 * {@link EXEC_SCRIPT}, the node's stop-file path and the action. A real child process per node (sh, plus
 * the mkdir, cat and mv it runs), like a site's wrapper script would be.
 */
export function execCommand(rootDir: string): string[] {
  return ['sh', '-c', EXEC_SCRIPT, 'tro-bench-exec', `${rootDir}/{{node}}{{path}}`, '{{action}}'];
}

/** Where the stop file of `node` lands when nodes are directories under `rootDir` (local and exec rounds). */
export function stopFileOnDisk(rootDir: string, node: string, stopFilePath: string): string {
  return join(rootDir, node, stopFilePath);
}

/** Whether a file exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** A checker for {@link measureBreakGlass}'s `onDisk`: the node's stop file under `rootDir`. */
export function onDiskUnder(rootDir: string, stopFilePath: string): (node: NodeTarget) => Promise<boolean> {
  return (node) => exists(stopFileOnDisk(rootDir, node.name, stopFilePath));
}

/** `spec.breakGlass.transport.concurrency`'s default in the CRD. */
export function defaultTransportConcurrency(): number {
  const at = (n: SchemaNode | undefined, key: string): SchemaNode | undefined => n?.properties?.[key];
  const node = at(at(at(at(rolloutSchema(), 'spec'), 'breakGlass'), 'transport'), 'concurrency');
  if (typeof node?.default !== 'number') throw new Error('the CRD has no default for spec.breakGlass.transport.concurrency');
  return node.default;
}
