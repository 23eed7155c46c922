/**
 * What the break-glass benchmark's rounds share: node lists, the exec transport's command for a
 * machine where every node is a directory, where each node's stop file (`<stop directory>/auto-<rev>`) lands on disk, and the CRD's
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
 * The shell script the exec rounds run once per node, as the exec transport's contract asks (the table in
 * docs/operations.md): `$1` is the node's stop directory, `$2` the stop file's name in it, `$3` the action.
 * A write puts stdin there atomically (a temp file in the same directory whose name starts with `.`, which
 * the agent skips, then rename); a clear removes the named file, and with `TRO_IF_REVISION` set only when
 * it names that revision (otherwise it prints the left-in-place marker and succeeds). The legacy single
 * file is the contract's optional part and is left alone; `list` is refused (the benchmark never lists,
 * and a command must not treat an action it does not know as a write).
 */
export const EXEC_SCRIPT = [
  'd="$1"; f="$2"; p="$d/$f"',
  'case "$3" in',
  '  write) mkdir -p -- "$d" && cat > "$d/.$f.tmp.$$" && exec mv -f -- "$d/.$f.tmp.$$" "$p" ;;',
  '  clear)',
  '    [ -e "$p" ] || exit 0',
  `    if [ -n "$TRO_IF_REVISION" ] && ! grep -qF "\\"revision\\":\\"$TRO_IF_REVISION\\"" "$p"; then echo ${LEFT_IN_PLACE_MARKER}; exit 0; fi`,
  '    exec rm -f -- "$p" ;;',
  '  *) echo "tro-bench-exec: action $3 not supported" >&2; exit 2 ;;',
  'esac',
].join('\n');

/**
 * The exec transport's argv template for nodes that are directories under `rootDir`: `sh -c` with
 * {@link EXEC_SCRIPT}, the node's stop directory, the file's name and the action. A real child process per
 * node (sh, plus the mkdir, cat and mv it runs), like a site's wrapper script would be.
 */
export function execCommand(rootDir: string): string[] {
  return ['sh', '-c', EXEC_SCRIPT, 'tro-bench-exec', `${rootDir}/{{node}}{{dir}}`, '{{file}}', '{{action}}'];
}

/** Where stop file `file` of `node` lands when nodes are directories under `rootDir` (local and exec rounds). */
export function stopFileOnDisk(rootDir: string, node: string, stopDirectory: string, file: string): string {
  return join(rootDir, node, stopDirectory, file);
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

/** A checker for {@link measureBreakGlass}'s `onDisk`: the node's stop file `file` in `stopDirectory` under `rootDir`. */
export function onDiskUnder(rootDir: string, stopDirectory: string): (node: NodeTarget, file: string) => Promise<boolean> {
  return (node, file) => exists(stopFileOnDisk(rootDir, node.name, stopDirectory, file));
}

/** `spec.breakGlass.transport.concurrency`'s default in the CRD. */
export function defaultTransportConcurrency(): number {
  const at = (n: SchemaNode | undefined, key: string): SchemaNode | undefined => n?.properties?.[key];
  const node = at(at(at(at(rolloutSchema(), 'spec'), 'breakGlass'), 'transport'), 'concurrency');
  if (typeof node?.default !== 'number') throw new Error('the CRD has no default for spec.breakGlass.transport.concurrency');
  return node.default;
}
