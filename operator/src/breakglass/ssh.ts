/**
 * The `ssh` transport: the system OpenSSH client, one process per node, in batch mode with host keys
 * always checked against the known_hosts the user supplied, bounded concurrency and a per-node timeout
 * that kills the process.
 *
 * Why the system ssh and not a JS implementation: it is the client every SRE already trusts and
 * debugs, it honours the same known_hosts format, and a stuck connection is a process we can kill.
 *
 * The remote side needs only a POSIX `sh`, `mkdir`, `cat`, `mv`, `rm` (and `grep` for a filtered clear):
 * present on any node image including busybox ones. The stop-file JSON travels on stdin, so it is never
 * part of a command line. The remote command is one string (ssh joins its arguments with spaces and the
 * remote login shell parses them), so every piece of it is quoted here with {@link shellQuote}.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runChild, type ChildResult } from './child.js';
import { perNodeOptions, transportCommon, type TransportCommon, type TransportCommonOptions } from './common.js';
import { isValidRevision, validateStopFilePath } from './stopfile.js';
import {
  addressOf,
  runPerNode,
  type AddressType,
  type BreakGlassTransport,
  type ClearOptions,
  type NodeOpResult,
  type NodeOutcome,
  type NodeTarget,
  TransportConfigError,
} from './transport.js';

/**
 * Quotes `s` as one word for a POSIX shell: single quotes, with each `'` written as `'\''`. Nothing is
 * special inside single quotes (no `$`, backquote, backslash or glob), so this is safe for any string
 * without NUL.
 */
export function shellQuote(s: string): string {
  if (s.includes('\0')) throw new Error('cannot quote a string containing NUL for a shell');
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** What the remote command does. */
export type RemoteAction = { action: 'write' } | { action: 'clear'; ifRevision?: string } | { action: 'check' };

/** Printed by a filtered clear that left a foreign stop file in place (read from stdout). */
export const LEFT_IN_PLACE_MARKER = 'tro-left-in-place';

/**
 * The POSIX sh script for `action` on `path` (not yet wrapped in `sh -c`):
 * - write: `umask 022; mkdir -p DIR && cat > PATH.tmp.$$ && mv -f PATH.tmp.$$ PATH`, removing the temp
 *   file if anything fails; readers see the old file or the whole new one (rename is atomic on the
 *   same filesystem, and the temp file is in the same directory).
 * - clear: `rm -f PATH`, or with `ifRevision` only when the file contains `"revision":"<rev>"` (the
 *   exact form {@link encodeStopFile} writes); otherwise it prints {@link LEFT_IN_PLACE_MARKER}.
 * - check: creates the directory if needed and checks it is writable (auth, sudo and path in one go).
 * No fsync: /var/run is a tmpfs on nodes, and atomicity comes from the rename.
 */
export function remoteScript(path: string, what: RemoteAction): string {
  validateStopFilePath(path);
  const p = shellQuote(path);
  const dir = shellQuote(dirname(path));
  // `$$` (the remote shell's pid) stays outside the quotes so the shell expands it.
  const tmp = `${shellQuote(`${path}.tmp.`)}$$`;
  switch (what.action) {
    case 'write':
      return `umask 022; mkdir -p -- ${dir} && cat > ${tmp} && chmod 0644 ${tmp} && mv -f -- ${tmp} ${p} || { rc=$?; rm -f -- ${tmp}; exit $rc; }`;
    case 'clear': {
      if (what.ifRevision === undefined) return `rm -f -- ${p}`;
      // The revision alphabet (label values, or "*") has nothing grep -F or the JSON encoding would alter.
      if (!isValidRevision(what.ifRevision)) throw new Error(`clear: invalid revision ${JSON.stringify(what.ifRevision)}`);
      const needle = shellQuote(`"revision":"${what.ifRevision}"`);
      return `if [ ! -e ${p} ]; then exit 0; fi; if grep -qF -- ${needle} ${p}; then rm -f -- ${p}; else echo ${LEFT_IN_PLACE_MARKER}; fi`;
    }
    case 'check':
      return `mkdir -p -- ${dir} && test -w ${dir}`;
  }
}

/**
 * The command string ssh sends: the script run by `sh -c` (so the remote login shell, whatever it is,
 * only has to parse one quoted word), through `sudo -n` (never prompt: batch mode) when asked.
 */
export function remoteCommand(path: string, what: RemoteAction, sudo: boolean): string {
  const sh = `sh -c ${shellQuote(remoteScript(path, what))}`;
  return sudo ? `sudo -n ${sh}` : sh;
}

/** Options of {@link SshTransport}; `timeoutSeconds` includes connecting, and sets ssh's ConnectTimeout too. */
export interface SshTransportOptions extends TransportCommonOptions {
  /** The remote user. */
  user: string;
  /** sshd's port on the nodes (default 22). */
  port?: number;
  /** Which node address to connect to (default InternalIP); a node without one fails. */
  addressType?: AddressType;
  /** Run the remote command through `sudo -n`. */
  sudo?: boolean;
  /** A private key file readable only by us (0600), e.g. from {@link materializeSshCredentials}. */
  privateKeyPath: string;
  /** The known_hosts file listing the nodes' host keys; unknown or changed host keys fail the node. */
  knownHostsPath: string;
  /** The ssh binary (default `ssh` from PATH). */
  sshBinary?: string;
  /**
   * The remote path per node instead of `stopFilePath`: for tests and benchmarks where one sshd stands
   * for many nodes. Production leaves it unset.
   */
  remotePathFor?: (node: NodeTarget) => string;
  /** Called when {@link SshTransport.close} runs, e.g. to delete materialised credentials. */
  onClose?: () => Promise<void>;
}

// What may be passed to ssh as a host or user: no leading '-' (it would be read as an option), no
// whitespace or shell/ssh-config metacharacters. Addresses come from Node objects, which a compromised
// cluster could fill with anything.
const HOST_RE = /^[A-Za-z0-9._:%[\]]+$/;
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Writes stop files over ssh (see the module comment). */
export class SshTransport implements BreakGlassTransport {
  readonly kind = 'ssh' as const;
  readonly stopFilePath: string;
  readonly concurrency: number;
  private readonly opts: SshTransportOptions;
  private readonly common: TransportCommon;
  private closed = false;

  constructor(opts: SshTransportOptions) {
    if (!USER_RE.test(opts.user) || opts.user.length > 64) throw new TransportConfigError(`ssh transport: invalid user ${JSON.stringify(opts.user)}`);
    const port = opts.port ?? 22;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TransportConfigError(`ssh transport: invalid port ${port}`);
    if (!opts.privateKeyPath || !opts.knownHostsPath) throw new TransportConfigError('ssh transport: privateKeyPath and knownHostsPath are required');
    this.opts = opts;
    this.common = transportCommon(opts);
    this.stopFilePath = this.common.stopFilePath;
    this.concurrency = this.common.concurrency;
  }

  /**
   * The ssh argv (without the binary) for one node: batch mode (never a prompt), strict host key
   * checking against our known_hosts only (the system-wide one and ~/.ssh are ignored: `-F /dev/null`
   * and `GlobalKnownHostsFile=/dev/null`), only our key (`IdentitiesOnly`), no forwarding, a connect
   * timeout, and `--` before the host so an address can never be read as an option.
   */
  sshArgs(address: string, command: string): string[] {
    if (!HOST_RE.test(address) || address.startsWith('-')) throw new Error(`invalid node address ${JSON.stringify(address)}`);
    const connectTimeout = Math.max(1, Math.ceil(this.common.timeoutSeconds));
    return [
      '-F',
      '/dev/null',
      '-T',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${this.opts.knownHostsPath}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'UpdateHostKeys=no',
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'IdentityAgent=none',
      '-o',
      'ClearAllForwardings=yes',
      '-o',
      'ConnectionAttempts=1',
      '-o',
      `ConnectTimeout=${connectTimeout}`,
      '-o',
      'LogLevel=ERROR',
      '-i',
      this.opts.privateKeyPath,
      '-p',
      String(this.opts.port ?? 22),
      '-l',
      this.opts.user,
      '--',
      address,
      command,
    ];
  }

  write(nodes: readonly NodeTarget[], content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    return this.run(nodes, { action: 'write' }, content, signal);
  }

  clear(nodes: readonly NodeTarget[], options: ClearOptions = {}): Promise<NodeOutcome[]> {
    const what: RemoteAction = options.ifRevision === undefined ? { action: 'clear' } : { action: 'clear', ifRevision: options.ifRevision };
    return this.run(nodes, what, '', options.signal);
  }

  /**
   * Connects to every node and checks that the stop file's directory is writable (preflight: proves
   * the address, host key, user key, sudo and path all work) without writing a stop file.
   */
  check(nodes: readonly NodeTarget[], signal?: AbortSignal): Promise<NodeOutcome[]> {
    return this.run(nodes, { action: 'check' }, '', signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.opts.onClose?.();
  }

  private run(nodes: readonly NodeTarget[], what: RemoteAction, input: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    // Its credential files are gone: a programming error, rejected rather than failed per node.
    if (this.closed) return Promise.reject(new Error('ssh transport is closed'));
    const addressType = this.opts.addressType ?? 'InternalIP';
    return runPerNode(nodes, perNodeOptions(this.common, signal), async (node, nodeSignal): Promise<NodeOpResult> => {
      const address = addressOf(node, addressType);
      if (address === undefined) return { ok: false, message: `node has no ${addressType} address` };
      const path = this.opts.remotePathFor?.(node) ?? this.stopFilePath;
      const args = this.sshArgs(address, remoteCommand(path, what, this.opts.sudo ?? false));
      const r = await runChild(this.opts.sshBinary ?? 'ssh', args, { input, signal: nodeSignal });
      return sshResult(r, address);
    });
  }
}

/** Interprets an ssh process's end. ssh exits 255 for its own errors, else with the remote command's code. */
function sshResult(r: ChildResult, address: string): NodeOpResult {
  if (r.spawnError) return { ok: false, message: `cannot run ssh: ${r.spawnError.message}` };
  const stderr = r.stderr.trim();
  if (r.exitCode === 0) {
    return r.stdout.includes(LEFT_IN_PLACE_MARKER) ? { ok: true, message: 'left in place: the stop file names another revision' } : { ok: true };
  }
  // Killed by our timer or the caller: runPerNode words the outcome; only ssh's own words are added.
  if (r.killed) return stderr === '' ? { ok: false } : { ok: false, message: stderr };
  if (r.exitCode === 255) {
    const hostKey = /host key verification failed|remote host identification has changed|no \S+ host key is known/i.test(stderr);
    return { ok: false, message: `${hostKey ? 'host key verification failed for ' : 'ssh to '}${address}: ${stderr || 'exit 255'}` };
  }
  const how = r.exitCode !== null ? `exit ${r.exitCode}` : `signal ${r.exitSignal ?? '?'}`;
  return { ok: false, message: `remote command failed (${how})${stderr ? `: ${stderr}` : ''}` };
}

/** Private credentials written to disk for ssh, and how to remove them. */
export interface SshCredentialFiles {
  /** The private directory (0700) holding both files. */
  dir: string;
  /** The private key (0600). */
  privateKeyPath: string;
  /** The known_hosts lines (0600). */
  knownHostsPath: string;
  /** Removes the directory and both files; idempotent (a plain function: safe to pass around). */
  cleanup: () => Promise<void>;
}

/**
 * Writes an ssh private key and known_hosts lines (from a Secret) into a fresh private directory
 * (mkdtemp: 0700; files 0600, as ssh demands of a key), for {@link SshTransportOptions}. Call
 * `cleanup()` when done (the transport does it on `close()` when built by transportFromSpec). Errors
 * name the problem, never the content.
 */
export async function materializeSshCredentials(keyPem: string, knownHosts: string, opts: { parentDir?: string } = {}): Promise<SshCredentialFiles> {
  if (!/^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(keyPem.trimStart())) {
    throw new Error('ssh private key: not a PEM or OpenSSH private key (expected a "-----BEGIN ... PRIVATE KEY-----" block)');
  }
  if (!/\S/.test(knownHosts)) throw new Error('ssh known_hosts: empty (host keys are always checked, so at least one entry is needed)');
  const dir = await mkdtemp(join(opts.parentDir ?? tmpdir(), 'tro-ssh-'));
  const privateKeyPath = join(dir, 'id');
  const knownHostsPath = join(dir, 'known_hosts');
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    // OpenSSH refuses a key without its final newline ("invalid format"); Secrets often lose it.
    const key = keyPem.trim().replace(/\r\n/g, '\n') + '\n';
    await writeFile(privateKeyPath, key, { mode: 0o600, flag: 'wx' });
    await writeFile(knownHostsPath, knownHosts.endsWith('\n') ? knownHosts : `${knownHosts}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    await cleanup();
    throw new Error(`write ssh credentials under ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
  }
  return { dir, privateKeyPath, knownHostsPath, cleanup };
}
