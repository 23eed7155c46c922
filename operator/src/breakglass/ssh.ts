/**
 * The `ssh` transport: the system OpenSSH client, one process per node, in batch mode with host keys
 * always checked against the known_hosts the user supplied, bounded concurrency and a per-node timeout
 * that kills the process.
 *
 * Why the system ssh and not a JS implementation: it is the client every SRE already trusts and
 * debugs, it honours the same known_hosts format, and a stuck connection is a process we can kill.
 *
 * The remote side needs only a POSIX `sh`, `mkdir`, `cat`, `mv`, `rm` (`grep` for a filtered clear; `wc`,
 * `od`, `tr` for a listing):
 * present on any node image including busybox ones. The stop-file JSON travels on stdin, so it is never
 * part of a command line. The remote command is one string (ssh joins its arguments with spaces and the
 * remote login shell parses them), so every piece of it is quoted here with {@link shellQuote}.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild, type ChildResult } from './child.js';
import { shellQuote } from './shellquote.js';
import { perNodeOptions, transportCommon, type TransportCommon, type TransportCommonOptions } from './common.js';
import { LISTING_OUTPUT_BYTES, listScript, parseListing, runPerNodeListing, type NodeListResult } from './listing.js';
import { checkStopFileName, isValidRevision, validateStopDirectory, validateStopFilePath } from './stopfile.js';
import {
  addressOf,
  runPerNode,
  type AddressType,
  type BreakGlassTransport,
  type ClearOptions,
  type NodeListing,
  type NodeOpResult,
  type NodeOutcome,
  type NodeTarget,
  TransportConfigError,
} from './transport.js';

export { shellQuote } from './shellquote.js';

/** What the remote command does; `file` is a stop-file name (see `stopFileName`), checked before use. */
export type RemoteAction =
  { action: 'write'; file: string } | { action: 'clear'; file: string; ifRevision?: string } | { action: 'list' } | { action: 'check' };

/** Printed by a filtered clear that left a foreign stop file in place (read from stdout). */
export const LEFT_IN_PLACE_MARKER = 'tro-left-in-place';
/** Printed by a filtered clear that also removed the legacy single stop file (read from stdout). */
export const LEGACY_REMOVED_MARKER = 'tro-removed-legacy';

/** Where the remote command works on one node: the stop directory and the legacy file. */
export interface RemotePaths {
  stopDirectory: string;
  stopFilePath: string;
}

/**
 * The POSIX sh script for `what` on a node (not yet wrapped in `sh -c`):
 * - write: `umask 022; mkdir -p DIR && cat > DIR/.FILE.tmp.$$ && mv -f DIR/.FILE.tmp.$$ DIR/FILE`, removing
 *   the temp file if anything fails; readers see the old file or the whole new one (rename is atomic
 *   on the same filesystem, and the temp file is in the same directory, a dot-file the agent skips).
 * - clear: `rm -f DIR/FILE`, or with `ifRevision` only when the file contains `"revision":"<rev>"` (the
 *   exact form {@link encodeStopFile} writes), otherwise printing {@link LEFT_IN_PLACE_MARKER}; with
 *   `ifRevision` the legacy single file is removed too when it names the revision
 *   ({@link LEGACY_REMOVED_MARKER}).
 * - list: the read-only listing script (listing.ts).
 * - check: creates the directory if needed and checks it is writable (auth, sudo and path in one go).
 * No fsync: /var/run is a tmpfs on nodes, and atomicity comes from the rename. The file name is checked
 * against the fixed alphabet and every path is quoted: nothing from a node or a spec becomes shell syntax.
 */
export function remoteScript(paths: RemotePaths, what: RemoteAction): string {
  validateStopDirectory(paths.stopDirectory);
  validateStopFilePath(paths.stopFilePath);
  const dir = shellQuote(paths.stopDirectory);
  switch (what.action) {
    case 'write': {
      const file = checkStopFileName(what.file);
      const p = shellQuote(`${paths.stopDirectory}/${file}`);
      // `$$` (the remote shell's pid) stays outside the quotes so the shell expands it.
      const tmp = `${shellQuote(`${paths.stopDirectory}/.${file}.tmp.`)}$$`;
      return `umask 022; mkdir -p -- ${dir} && cat > ${tmp} && chmod 0644 ${tmp} && mv -f -- ${tmp} ${p} || { rc=$?; rm -f -- ${tmp}; exit $rc; }`;
    }
    case 'clear': {
      const p = shellQuote(`${paths.stopDirectory}/${checkStopFileName(what.file)}`);
      if (what.ifRevision === undefined) return `rm -f -- ${p}`;
      // The revision alphabet (label values, or "*") has nothing grep -F or the JSON encoding would alter.
      if (!isValidRevision(what.ifRevision)) throw new Error(`clear: invalid revision ${JSON.stringify(what.ifRevision)}`);
      const needle = shellQuote(`"revision":"${what.ifRevision}"`);
      const l = shellQuote(paths.stopFilePath);
      return (
        `if [ -e ${p} ]; then if grep -qF -- ${needle} ${p}; then rm -f -- ${p} || exit $?; else echo ${LEFT_IN_PLACE_MARKER}; fi; fi; ` +
        `if [ -f ${l} ] && grep -qF -- ${needle} ${l}; then rm -f -- ${l} && echo ${LEGACY_REMOVED_MARKER}; fi; exit 0`
      );
    }
    case 'list':
      return listScript(paths.stopDirectory, paths.stopFilePath);
    case 'check':
      return `mkdir -p -- ${dir} && test -w ${dir}`;
  }
}

/**
 * The command string ssh sends: the script run by `sh -c` (so the remote login shell, whatever it is,
 * only has to parse one quoted word), through `sudo -n` (never prompt: batch mode) when asked.
 */
export function remoteCommand(paths: RemotePaths, what: RemoteAction, sudo: boolean): string {
  const sh = `sh -c ${shellQuote(remoteScript(paths, what))}`;
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
   * A directory per node that the stop directory and the legacy file are placed under (like the local
   * transport's node roots): for tests and benchmarks where one sshd stands for many nodes. Production
   * leaves it unset.
   */
  remoteRootFor?: (node: NodeTarget) => string;
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
  readonly stopDirectory: string;
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
    this.stopDirectory = this.common.stopDirectory;
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

  write(nodes: readonly NodeTarget[], file: string, content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    return this.run(nodes, { action: 'write', file: checkStopFileName(file) }, content, signal);
  }

  clear(nodes: readonly NodeTarget[], options: ClearOptions): Promise<NodeOutcome[]> {
    const file = checkStopFileName(options.file);
    const what: RemoteAction = options.ifRevision === undefined ? { action: 'clear', file } : { action: 'clear', file, ifRevision: options.ifRevision };
    return this.run(nodes, what, '', options.signal);
  }

  /** Lists the stop files on every node with a read-only remote command (the listing script, listing.ts). */
  list(nodes: readonly NodeTarget[], signal?: AbortSignal): Promise<NodeListing[]> {
    if (this.closed) return Promise.reject(new Error('ssh transport is closed'));
    return runPerNodeListing(nodes, perNodeOptions(this.common, signal), async (node, nodeSignal): Promise<NodeListResult> => {
      const started = this.start(node, { action: 'list' }, '', nodeSignal, LISTING_OUTPUT_BYTES);
      if ('message' in started) return { ok: false, message: started.message };
      const r = await started.child;
      const res = sshResult(r, started.address);
      if (!res.ok) return res.message === undefined ? { ok: false } : { ok: false, message: res.message };
      return { ok: true, listing: parseListing(r.stdout) };
    });
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

  /** The paths the remote command works on for `node` (under its {@link SshTransportOptions.remoteRootFor}). */
  remotePathsFor(node: NodeTarget): RemotePaths {
    const root = this.opts.remoteRootFor?.(node);
    if (root === undefined) return { stopDirectory: this.stopDirectory, stopFilePath: this.stopFilePath };
    return { stopDirectory: join(root, this.stopDirectory), stopFilePath: join(root, this.stopFilePath) };
  }

  /** Starts ssh for one node, or says why it cannot (no address). */
  private start(
    node: NodeTarget,
    what: RemoteAction,
    input: string,
    signal: AbortSignal,
    maxOutputBytes?: number,
  ): { child: Promise<ChildResult>; address: string } | { message: string } {
    const addressType = this.opts.addressType ?? 'InternalIP';
    const address = addressOf(node, addressType);
    if (address === undefined) return { message: `node has no ${addressType} address` };
    const args = this.sshArgs(address, remoteCommand(this.remotePathsFor(node), what, this.opts.sudo ?? false));
    return { child: runChild(this.opts.sshBinary ?? 'ssh', args, { input, signal, ...(maxOutputBytes ? { maxOutputBytes } : {}) }), address };
  }

  private run(nodes: readonly NodeTarget[], what: RemoteAction, input: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    // Its credential files are gone: a programming error, rejected rather than failed per node.
    if (this.closed) return Promise.reject(new Error('ssh transport is closed'));
    return runPerNode(nodes, perNodeOptions(this.common, signal), async (node, nodeSignal): Promise<NodeOpResult> => {
      const started = this.start(node, what, input, nodeSignal);
      if ('message' in started) return { ok: false, message: started.message };
      return sshResult(await started.child, started.address);
    });
  }
}

/** Interprets an ssh process's end. ssh exits 255 for its own errors, else with the remote command's code. */
function sshResult(r: ChildResult, address: string): NodeOpResult {
  if (r.spawnError) return { ok: false, message: `cannot run ssh: ${r.spawnError.message}` };
  const stderr = r.stderr.trim();
  if (r.exitCode === 0) return clearNotes(r.stdout);
  // Killed by our timer or the caller: runPerNode words the outcome; only ssh's own words are added.
  if (r.killed) return stderr === '' ? { ok: false } : { ok: false, message: stderr };
  if (r.exitCode === 255) {
    const hostKey = /host key verification failed|remote host identification has changed|no \S+ host key is known/i.test(stderr);
    return { ok: false, message: `${hostKey ? 'host key verification failed for ' : 'ssh to '}${address}: ${stderr || 'exit 255'}` };
  }
  const how = r.exitCode !== null ? `exit ${r.exitCode}` : `signal ${r.exitSignal ?? '?'}`;
  return { ok: false, message: `remote command failed (${how})${stderr ? `: ${stderr}` : ''}` };
}

/**
 * The outcome of a successful remote command, with what a filtered clear printed turned into words
 * (shared with the exec transport, whose command prints the same markers).
 */
export function clearNotes(stdout: string): NodeOpResult {
  const notes: string[] = [];
  if (stdout.includes(LEFT_IN_PLACE_MARKER)) notes.push('left in place: the stop file names another revision');
  if (stdout.includes(LEGACY_REMOVED_MARKER)) notes.push('removed the legacy stop file too');
  return notes.length === 0 ? { ok: true } : { ok: true, message: notes.join('; ') };
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
