/**
 * The `exec` transport: a command run once per node, for fleets where ssh is not the way in (a cloud
 * provider's run-command CLI, a configuration-management tool, a script of the SRE team).
 *
 * The command is an argv template; `{{node}}`, `{{address}}`, `{{path}}` and `{{action}}` are replaced
 * inside every argument. It is run with execFile semantics (no shell), so a node name or address can
 * never become shell syntax. For a write, the stop-file JSON is on stdin and the command must put it at
 * `{{path}}` atomically; for a clear, stdin is empty and `{{action}}` is `clear`. The same facts are in
 * the environment (`TRO_ACTION`, `TRO_NODE`, `TRO_ADDRESS`, `TRO_PATH`, and `TRO_IF_REVISION` for a
 * filtered clear) so a wrapper script need not take arguments. Exit code 0 is success; anything else
 * fails the node with the tail of its stderr as the message. A command that prints
 * {@link LEFT_IN_PLACE_MARKER} on a filtered clear reports that it kept a foreign file.
 */
import { runChild } from './child.js';
import { perNodeOptions, transportCommon, type TransportCommon, type TransportCommonOptions } from './common.js';
import { LEFT_IN_PLACE_MARKER } from './ssh.js';
import {
  ADDRESS_TYPES,
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

/** Options of {@link ExecTransport}; past `timeoutSeconds` the command's process group is killed. */
export interface ExecTransportOptions extends TransportCommonOptions {
  /** argv template: the program, then its arguments, with `{{node}}`, `{{address}}`, `{{path}}`, `{{action}}`. */
  command: readonly string[];
  /** Which address `{{address}}` prefers (default InternalIP, then the others in {@link ADDRESS_TYPES} order). */
  addressType?: AddressType;
  /** Extra environment for the command (on top of the operator's). */
  env?: Record<string, string>;
}

const PLACEHOLDER_RE = /\{\{\s*(node|address|path|action)\s*\}\}/g;

/** The values placed into a command template for one node. */
export interface TemplateValues {
  node: string;
  address: string;
  path: string;
  action: 'write' | 'clear';
}

/**
 * Replaces the placeholders in each argument (no other interpretation: the result is passed verbatim
 * as argv). Throws for an unknown `{{...}}` placeholder, so a typo in the spec fails loudly.
 */
export function expandTemplate(command: readonly string[], values: TemplateValues): string[] {
  return command.map((arg) => {
    const unknown = /\{\{\s*([^}]*?)\s*\}\}/g.exec(arg.replace(PLACEHOLDER_RE, ''));
    if (unknown) throw new TransportConfigError(`exec transport: unknown placeholder {{${unknown[1]}}} (known: node, address, path, action)`);
    return arg.replace(PLACEHOLDER_RE, (_m, key: keyof TemplateValues) => values[key]);
  });
}

/** Runs a command per node (see the module comment). */
export class ExecTransport implements BreakGlassTransport {
  readonly kind = 'exec' as const;
  readonly stopFilePath: string;
  readonly concurrency: number;
  private readonly opts: ExecTransportOptions;
  private readonly common: TransportCommon;
  private readonly usesAddress: boolean;

  constructor(opts: ExecTransportOptions) {
    if (opts.command.length === 0 || opts.command[0] === '') throw new TransportConfigError('exec transport: command must name a program');
    // Validate the template once, up front, rather than failing every node the same way.
    expandTemplate(opts.command, { node: 'n', address: 'a', path: '/p', action: 'write' });
    this.opts = opts;
    this.common = transportCommon(opts);
    this.stopFilePath = this.common.stopFilePath;
    this.concurrency = this.common.concurrency;
    this.usesAddress = opts.command.some((a) => /\{\{\s*address\s*\}\}/.test(a));
  }

  write(nodes: readonly NodeTarget[], content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    return this.run(nodes, 'write', content, signal, undefined);
  }

  clear(nodes: readonly NodeTarget[], options: ClearOptions = {}): Promise<NodeOutcome[]> {
    return this.run(nodes, 'clear', '', options.signal, options.ifRevision);
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

  private run(
    nodes: readonly NodeTarget[],
    action: 'write' | 'clear',
    input: string,
    signal: AbortSignal | undefined,
    ifRevision: string | undefined,
  ): Promise<NodeOutcome[]> {
    return runPerNode(nodes, perNodeOptions(this.common, signal), async (node, nodeSignal): Promise<NodeOpResult> => {
      const address = this.addressFor(node);
      if (address === undefined && this.usesAddress) return { ok: false, message: 'node has no address' };
      const values: TemplateValues = { node: node.name, address: address ?? '', path: this.stopFilePath, action };
      const [file, ...args] = expandTemplate(this.opts.command, values) as [string, ...string[]];
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ...this.opts.env,
        TRO_ACTION: action,
        TRO_NODE: values.node,
        TRO_ADDRESS: values.address,
        TRO_PATH: values.path,
      };
      if (ifRevision !== undefined) env.TRO_IF_REVISION = ifRevision;
      const r = await runChild(file, args, { input, signal: nodeSignal, env });
      if (r.spawnError) return { ok: false, message: `cannot run ${file}: ${r.spawnError.message}` };
      if (r.exitCode === 0) {
        if (action === 'clear' && r.stdout.includes(LEFT_IN_PLACE_MARKER)) return { ok: true, message: 'left in place: the stop file names another revision' };
        return { ok: true };
      }
      const stderr = r.stderr.trim();
      // Killed by our timer or the caller: runPerNode words the outcome; only the command's own words are added.
      if (r.killed) return stderr === '' ? { ok: false } : { ok: false, message: stderr };
      const how = r.exitCode !== null ? `exit ${r.exitCode}` : `signal ${r.exitSignal ?? '?'}`;
      return { ok: false, message: `${file} failed (${how})${stderr ? `: ${stderr}` : ''}` };
    });
  }
}
