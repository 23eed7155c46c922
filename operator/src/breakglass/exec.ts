/**
 * The `exec` transport: a command run once per node, for fleets where ssh is not the way in (a cloud
 * provider's run-command CLI, a configuration-management tool, a script of the SRE team).
 *
 * The command is an argv template; `{{node}}`, `{{address}}`, `{{path}}`, `{{dir}}`, `{{file}}` and
 * `{{action}}` are replaced inside every argument. It is run with execFile semantics (no shell), so a
 * node name or address can never become shell syntax. The actions:
 * - `write`: the stop-file JSON is on stdin; the command must put it at `{{path}}` (= `{{dir}}/{{file}}`,
 *   a file of the stop directory such as `auto-<rev>`) atomically, through a temp file in `{{dir}}` whose
 *   name starts with `.` (the agent skips dot-files) renamed over the target.
 * - `clear`: stdin is empty; remove `{{path}}`. With `TRO_IF_REVISION` set, only when the file names that
 *   revision (else print `tro-left-in-place`), and remove the legacy file `TRO_LEGACY_PATH` too
 *   when it names it (printing `tro-removed-legacy`; optional).
 * - `list` (only `kubectl tro break-glass status` asks for it; read-only): print the listing of
 *   `{{dir}}` and `TRO_LEGACY_PATH` in the format of listing.ts. `{{path}}` and `{{file}}` are empty, so a
 *   command that does not know `list` and treats it as a write fails instead of writing anything.
 * The same facts are in the environment (`TRO_ACTION`, `TRO_NODE`, `TRO_ADDRESS`, `TRO_PATH`, `TRO_DIR`,
 * `TRO_FILE`, `TRO_LEGACY_PATH`, and `TRO_IF_REVISION` for a filtered clear) so a wrapper script need not
 * take arguments. A command written for the single-file layout keeps working for write and clear: its
 * `{{path}}` / `TRO_PATH` is now the named file in the directory. Exit code 0 is success; anything else
 * fails the node with the tail of its stderr as the message.
 */
import { runChild, type ChildResult } from './child.js';
import { perNodeOptions, transportCommon, type TransportCommon, type TransportCommonOptions } from './common.js';
import { LISTING_OUTPUT_BYTES, parseListing, runPerNodeListing } from './listing.js';
import { clearNotes } from './ssh.js';
import { checkStopFileName } from './stopfile.js';
import {
  ADDRESS_TYPES,
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

/** Options of {@link ExecTransport}; past `timeoutSeconds` the command's process group is killed. */
export interface ExecTransportOptions extends TransportCommonOptions {
  /** argv template: the program, then its arguments, with `{{node}}`, `{{address}}`, `{{path}}`, `{{dir}}`, `{{file}}`, `{{action}}`. */
  command: readonly string[];
  /** Which address `{{address}}` prefers (default InternalIP, then the others in {@link ADDRESS_TYPES} order). */
  addressType?: AddressType;
  /** Extra environment for the command (on top of the operator's). */
  env?: Record<string, string>;
}

const PLACEHOLDER_RE = /\{\{\s*(node|address|path|dir|file|action)\s*\}\}/g;

/** What the exec command is asked to do (see the module comment). */
export type ExecAction = 'write' | 'clear' | 'list';

/** The values placed into a command template for one node. */
export interface TemplateValues {
  node: string;
  address: string;
  /** `<dir>/<file>`; empty for `list`. */
  path: string;
  /** The stop directory. */
  dir: string;
  /** The stop file's name in the directory; empty for `list`. */
  file: string;
  action: ExecAction;
}

/**
 * Replaces the placeholders in each argument (no other interpretation: the result is passed verbatim
 * as argv). Throws for an unknown `{{...}}` placeholder, so a typo in the spec fails loudly.
 */
export function expandTemplate(command: readonly string[], values: TemplateValues): string[] {
  return command.map((arg) => {
    const unknown = /\{\{\s*([^}]*?)\s*\}\}/g.exec(arg.replace(PLACEHOLDER_RE, ''));
    if (unknown) throw new TransportConfigError(`exec transport: unknown placeholder {{${unknown[1]}}} (known: node, address, path, dir, file, action)`);
    return arg.replace(PLACEHOLDER_RE, (_m, key: keyof TemplateValues) => values[key]);
  });
}

/** Runs a command per node (see the module comment). */
export class ExecTransport implements BreakGlassTransport {
  readonly kind = 'exec' as const;
  readonly stopDirectory: string;
  readonly stopFilePath: string;
  readonly concurrency: number;
  private readonly opts: ExecTransportOptions;
  private readonly common: TransportCommon;
  private readonly usesAddress: boolean;

  constructor(opts: ExecTransportOptions) {
    if (opts.command.length === 0 || opts.command[0] === '') throw new TransportConfigError('exec transport: command must name a program');
    // Validate the template once, up front, rather than failing every node the same way.
    expandTemplate(opts.command, { node: 'n', address: 'a', path: '/d/f', dir: '/d', file: 'f', action: 'write' });
    this.opts = opts;
    this.common = transportCommon(opts);
    this.stopDirectory = this.common.stopDirectory;
    this.stopFilePath = this.common.stopFilePath;
    this.concurrency = this.common.concurrency;
    this.usesAddress = opts.command.some((a) => /\{\{\s*address\s*\}\}/.test(a));
  }

  write(nodes: readonly NodeTarget[], file: string, content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    checkStopFileName(file);
    return runPerNode(nodes, perNodeOptions(this.common, signal), async (node, nodeSignal) =>
      this.finish(await this.runOne(node, 'write', file, content, nodeSignal, undefined), 'write'),
    );
  }

  clear(nodes: readonly NodeTarget[], options: ClearOptions): Promise<NodeOutcome[]> {
    checkStopFileName(options.file);
    return runPerNode(nodes, perNodeOptions(this.common, options.signal), async (node, nodeSignal) =>
      this.finish(await this.runOne(node, 'clear', options.file, '', nodeSignal, options.ifRevision), 'clear'),
    );
  }

  /** Runs the command with the action `list` per node and parses its output (see the module comment). */
  list(nodes: readonly NodeTarget[], signal?: AbortSignal): Promise<NodeListing[]> {
    return runPerNodeListing(nodes, perNodeOptions(this.common, signal), async (node, nodeSignal) => {
      const r = await this.runOne(node, 'list', '', '', nodeSignal, undefined);
      const res = this.finish(r, 'list');
      if (!res.ok || 'message' in r) return res.message === undefined ? { ok: false } : { ok: false, message: res.message };
      return { ok: true, listing: parseListing(r.stdout) };
    });
  }

  async close(): Promise<void> {}

  /** The address `{{address}}` stands for: the preferred type, else the first other type present. */
  private addressFor(node: NodeTarget): string | undefined {
    const preferred = this.opts.addressType ?? 'InternalIP';
    for (const t of [preferred, ...ADDRESS_TYPES.filter((x) => x !== preferred)]) {
      const a = addressOf(node, t);
      if (a !== undefined) return a;
    }
    return undefined;
  }

  /** Runs the command for one node, or says why it cannot (no address). */
  private async runOne(
    node: NodeTarget,
    action: ExecAction,
    file: string,
    input: string,
    signal: AbortSignal,
    ifRevision: string | undefined,
  ): Promise<ChildResult | { message: string }> {
    const address = this.addressFor(node);
    if (address === undefined && this.usesAddress) return { message: 'node has no address' };
    const dir = this.stopDirectory;
    const values: TemplateValues = { node: node.name, address: address ?? '', path: file === '' ? '' : `${dir}/${file}`, dir, file, action };
    const [program, ...args] = expandTemplate(this.opts.command, values) as [string, ...string[]];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.opts.env,
      TRO_ACTION: action,
      TRO_NODE: values.node,
      TRO_ADDRESS: values.address,
      TRO_PATH: values.path,
      TRO_DIR: dir,
      TRO_FILE: file,
      TRO_LEGACY_PATH: this.stopFilePath,
    };
    if (ifRevision !== undefined) env.TRO_IF_REVISION = ifRevision;
    const r = await runChild(program, args, { input, signal, env, ...(action === 'list' ? { maxOutputBytes: LISTING_OUTPUT_BYTES } : {}) });
    if (r.spawnError) return { message: `cannot run ${program}: ${r.spawnError.message}` };
    return r;
  }

  /** Interprets how the command ended. */
  private finish(r: ChildResult | { message: string }, action: ExecAction): NodeOpResult {
    if ('message' in r) return { ok: false, message: r.message };
    if (r.exitCode === 0) return action === 'clear' ? clearNotes(r.stdout) : { ok: true };
    const stderr = r.stderr.trim();
    // Killed by our timer or the caller: runPerNode words the outcome; only the command's own words are added.
    if (r.killed) return stderr === '' ? { ok: false } : { ok: false, message: stderr };
    const how = r.exitCode !== null ? `exit ${r.exitCode}` : `signal ${r.exitSignal ?? '?'}`;
    return { ok: false, message: `${this.opts.command[0]} failed (${how})${stderr ? `: ${stderr}` : ''}` };
  }
}
