/**
 * The `kubectl-tro` command line: a commander program whose commands work through injected
 * dependencies ({@link CliDeps}: output streams, clock, the API connection, Ctrl-C), so the whole
 * program runs in unit tests against a fake API. {@link run} never throws and never exits the process:
 * it returns the exit code (see errors.ts for the table), having written one clear line to stderr for
 * any failure (the stack only with TRO_DEBUG=1).
 */
import { Command, CommanderError, Option } from 'commander';
import type { TelemetryRollout } from '../api/types.generated.js';
import type { InventoryStore, NodeInventory } from '../breakglass/inventory.js';
import type { Clock } from '#core/clock.js';
import {
  breakGlassExitCode,
  breakGlassStatusExitCode,
  renderBreakGlass,
  renderBreakGlassStatus,
  runBreakGlass,
  runBreakGlassStatus,
  type BreakGlassOptions,
  type BreakGlassStatusOptions,
} from './breakglass.js';
import type { Connection, ConnectOptions } from './client.js';
import { abortValue, expectedEffect, isDone, pausePatch, REQUEST_ANNOTATIONS, requestId, requestPatch, type RequestKind } from './controls.js';
import { CliError, classifyError, EXIT, oneLine } from './errors.js';
import {
  DEFAULT_INVENTORY_NAMESPACE,
  HELP_AFTER,
  OUTPUT_FORMATS,
  packageVersion,
  positiveSeconds,
  serialize,
  withoutManagedFields,
  withTimeout,
  type GlobalOptions,
} from './options.js';
import { redactString } from '../util/logging.js';
import { renderHistory, renderList, renderRollout, stripAnsi, useColor } from './render.js';
import { renderValidation, validateFiles } from './validatefiles.js';

/** Where the program writes. `isTTY` decides colour and screen redraws. */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** Everything the program needs from the outside world. */
export interface CliDeps {
  stdout: Output;
  stderr: Output;
  /** Environment (NO_COLOR, TRO_DEBUG). */
  env: Record<string, string | undefined>;
  now: () => Date;
  /** [0, 1), for request ids. */
  random: () => number;
  /** Waits `ms`, resolving early (never rejecting) when `signal` aborts. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Aborted on Ctrl-C: a watch then ends with exit 0. */
  signal: AbortSignal;
  /** Opens the connection to the management cluster (loads client-node lazily in production). */
  connect: (o: ConnectOptions) => Promise<Connection>;
  /** The text of `-f -`. */
  readStdin: () => string;
  /** The clock of break-glass actions (stop-file times, per-node timeouts). */
  clock: Clock;
  /** The node-inventory store in `namespace` of the management cluster (`inventory export`). */
  inventories: (o: ConnectOptions, namespace: string) => Promise<{ store: Pick<InventoryStore, 'load'>; server: string }>;
}

/** The program and the exit code its last action asked for (0 unless an action set one). */
export interface BuiltProgram {
  program: Command;
  exitCode(): number;
}

/** Builds the program; `deps` receive all I/O. */
export function buildProgram(deps: CliDeps): BuiltProgram {
  const color = useColor(deps.stdout.isTTY, deps.env);
  const out = (text: string) => deps.stdout.write(color ? text : stripAnsi(text));
  const globals = (cmd: Command): GlobalOptions => cmd.optsWithGlobals<GlobalOptions>();
  const shown = (g: GlobalOptions, ro: TelemetryRollout): TelemetryRollout => (g.showManagedFields ? ro : withoutManagedFields(ro));
  const connectOptions = (g: GlobalOptions): ConnectOptions => ({
    ...(g.kubeconfig !== undefined ? { kubeconfig: g.kubeconfig } : {}),
    ...(g.context !== undefined ? { context: g.context } : {}),
    ...(g.namespace !== undefined ? { namespace: g.namespace } : {}),
    requestTimeoutSeconds: g.requestTimeout,
  });
  const open = (g: GlobalOptions): Promise<Connection> => deps.connect(connectOptions(g));
  let exitCode: number = EXIT.ok;

  const program = new Command('kubectl-tro')
    .description('Follow and control TelemetryRollouts (telemetry.rollout.dev/v1alpha1) from a terminal; also as `kubectl tro`.')
    .version(packageVersion(), '--version')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context (default: the current one)')
    .option('-n, --namespace <namespace>', "namespace (default: the context's, else default)")
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('text'))
    .addOption(new Option('--request-timeout <seconds>', 'timeout of each API request').argParser(positiveSeconds).default(10))
    .option('--show-managed-fields', 'keep metadata.managedFields in -o json|yaml output')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => deps.stdout.write(s),
      writeErr: (s) => deps.stderr.write(s),
    })
    .addHelpText('after', HELP_AFTER);

  program
    .command('get')
    .description('show a rollout as a tree: stages → clusters → node steps, with gate measurements beside their thresholds')
    .argument('<name>', 'the TelemetryRollout')
    .option('-w, --watch', 'keep showing it as it changes (polls; Ctrl-C to stop)')
    .option('--until-done', 'with --watch: stop when the rollout is Succeeded (exit 0), RolledBack or Failed (exit 1)')
    .addOption(new Option('--interval <seconds>', 'poll interval of --watch').argParser(positiveSeconds).default(2))
    .action(async (name: string, o: { watch?: boolean; untilDone?: boolean; interval: number }, cmd: Command) => {
      const g = globals(cmd);
      const c = await open(g);
      const namespace = c.namespace;
      if (!o.watch && !o.untilDone) {
        const ro = await c.api.get(namespace, name);
        out(g.output === 'text' ? renderRollout(ro, { color, now: deps.now() }) : serialize(g.output, shown(g, ro)));
        return;
      }
      exitCode = await watch(c, namespace, name, { ...o, untilDone: o.untilDone === true }, g);
    });

  /** Polls the rollout, rendering each new resourceVersion; see `get --watch`. */
  async function watch(c: Connection, namespace: string, name: string, o: { untilDone: boolean; interval: number }, g: GlobalOptions): Promise<number> {
    const format = g.output;
    let lastVersion: string | undefined;
    let renders = 0;
    let failing = false;
    while (!deps.signal.aborted) {
      let ro: TelemetryRollout | undefined;
      try {
        ro = await c.api.get(namespace, name);
        if (failing) deps.stderr.write('reconnected\n');
        failing = false;
      } catch (err) {
        // Before the first answer an unreachable server is an error like any other; once watching,
        // a management-cluster blip must not end the watch: say so once and keep polling.
        if (!(err instanceof CliError) || err.exitCode !== EXIT.unreachable || renders === 0) throw err;
        if (!failing) deps.stderr.write(`warning: ${err.message}; retrying every ${o.interval}s\n`);
        failing = true;
      }
      if (ro && ro.metadata?.resourceVersion !== lastVersion) {
        lastVersion = ro.metadata?.resourceVersion;
        if (format === 'text') {
          const tree = renderRollout(ro, { color, now: deps.now() });
          if (deps.stdout.isTTY) out(`\x1b[H\x1b[2J${paintHeader(name, deps.now())}\n${tree}`);
          else out(`${renders ? '\n' : ''}${tree}`);
        } else {
          const doc = serialize(format, shown(g, ro));
          out(format === 'yaml' && renders ? `---\n${doc}` : doc);
        }
        renders++;
      }
      if (ro && o.untilDone && isDone(ro)) {
        const phase = ro.status?.phase ?? '';
        if (phase === 'Succeeded') return EXIT.ok;
        deps.stderr.write(`rollout ${name} ended ${phase}${ro.status?.reason ? ` (${ro.status.reason})` : ''}\n`);
        return EXIT.failed;
      }
      await deps.sleep(o.interval * 1000, deps.signal);
    }
    return EXIT.ok;
  }

  const paintHeader = (name: string, now: Date) => `kubectl tro get ${name} --watch   ${now.toISOString()}   (Ctrl-C to stop)`;

  program
    .command('list')
    .alias('ls')
    .description('list rollouts in the namespace, or in all namespaces with -A')
    .option('-A, --all-namespaces', 'every namespace')
    .action(async (o: { allNamespaces?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const c = await open(g);
      const all = o.allNamespaces === true;
      const items = await c.api.list(all ? undefined : c.namespace);
      if (g.output !== 'text') {
        out(serialize(g.output, { apiVersion: 'v1', kind: 'List', items: items.map((ro) => shown(g, ro)) }));
        return;
      }
      if (!items.length) deps.stderr.write(all ? 'No TelemetryRollouts found.\n' : `No TelemetryRollouts found in namespace ${c.namespace}.\n`);
      else out(renderList(items, { color, now: deps.now(), allNamespaces: all }));
    });

  /** The text report of a control request. */
  const reportControl = (ro: TelemetryRollout, done: string, effect: string) =>
    `telemetryrollout "${ro.metadata?.name ?? ''}" in namespace "${ro.metadata?.namespace ?? ''}": ${done}\nthe operator will: ${effect}\n`;

  for (const [verb, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    program
      .command(verb)
      .description(
        paused ? 'pause the rollout (spec.paused=true): no further node step or cluster starts' : 'resume a rollout paused with pause (spec.paused=false)',
      )
      .argument('<name>', 'the TelemetryRollout')
      .action(async (name: string, _o: unknown, cmd: Command) => {
        const g = globals(cmd);
        const c = await open(g);
        const ro = await c.api.patch(c.namespace, name, pausePatch(paused));
        if (g.output !== 'text') out(serialize(g.output, shown(g, ro)));
        else out(reportControl(ro, `spec.paused set to ${paused}`, expectedEffect(verb, ro)));
      });
  }

  const requestCommand = (kind: RequestKind, description: string) =>
    program
      .command(kind)
      .description(`${description} (sets the ${REQUEST_ANNOTATIONS[kind]} annotation to a fresh value; the operator acts once per value)`)
      .argument('<name>', 'the TelemetryRollout');
  const sendRequest = async (kind: RequestKind, name: string, cmd: Command, reason?: string) => {
    const g = globals(cmd);
    const c = await open(g);
    const id = requestId(deps.now(), deps.random);
    const value = kind === 'abort' ? abortValue(id, reason) : id;
    const ro = await c.api.patch(c.namespace, name, requestPatch(kind, value));
    if (g.output !== 'text') out(serialize(g.output, shown(g, ro)));
    else out(reportControl(ro, `${kind} requested (${REQUEST_ANNOTATIONS[kind]}=${JSON.stringify(value)})`, expectedEffect(kind, ro)));
  };
  requestCommand('abort', 'halt the rollout and roll back')
    .option('--reason <text>', 'why; recorded in the annotation value and the rollout history')
    .action((name: string, o: { reason?: string }, cmd: Command) => sendRequest('abort', name, cmd, o.reason));
  requestCommand('retry', 'retry a Failed/RolledBack rollout from the start, or a gate-paused one after resetting failure counts').action(
    (name: string, _o: unknown, cmd: Command) => sendRequest('retry', name, cmd),
  );
  requestCommand('promote', 'end the current bake early (a passing gate is still required)').action((name: string, _o: unknown, cmd: Command) =>
    sendRequest('promote', name, cmd),
  );

  program
    .command('history')
    .description("show the rollout's history (status.history, oldest first)")
    .argument('<name>', 'the TelemetryRollout')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const c = await open(g);
      const ro = await c.api.get(c.namespace, name);
      const history = ro.status?.history ?? [];
      if (g.output !== 'text') out(serialize(g.output, history));
      else if (!history.length) deps.stderr.write(`No history recorded for ${name} yet.\n`);
      else out(renderHistory(history, { color, now: deps.now() }));
    });

  program
    .command('validate')
    .description('validate TelemetryRollout manifests offline, with the same rules as the CRD (multi-document YAML, directories, - for stdin)')
    .requiredOption('-f, --filename <file...>', 'manifest file(s) or directories')
    .action(async (o: { filename: string[] }, cmd: Command) => {
      const g = globals(cmd);
      const results = validateFiles(o.filename, deps.readStdin);
      if (g.output !== 'text') out(serialize(g.output, results));
      else out(renderValidation(results));
      const rollouts = results.filter((r) => r.result !== 'skipped');
      if (!rollouts.length) {
        deps.stderr.write(`error: no TelemetryRollout documents in ${o.filename.join(', ')}\n`);
        exitCode = EXIT.failed;
      } else if (rollouts.some((r) => r.result === 'invalid')) {
        exitCode = EXIT.failed;
      }
    });

  const breakGlass = program
    .command('break-glass')
    .description(
      "stop the agents of a cluster through node-local stop files, with no API server at all: nodes from an inventory file, transport from the rollout manifest (or --local-root). A person's stop is its own file (manual-REV, manual-all), which the operator never removes; `break-glass status` shows who stopped what",
    )
    .argument('<cluster>', 'the target cluster (must match the inventory)')
    .option('--inventory <file>', 'node inventory written earlier by `kubectl tro inventory export` (required)')
    .option('--revision <hash>', "the collector revision to stop, or '*' for every revision (required)")
    .option('--reason <text>', 'why; written into the stop file (required unless --clear)')
    .option('-f, --filename <file>', 'the TelemetryRollout manifest whose spec.breakGlass.transport to use, or a transport spec document')
    .option('--local-root <dir>', 'use the local transport: one directory per node under DIR (e2e and demos)')
    .option('--ssh-key <file>', 'private key for an ssh transport (offline, the Secrets are not reachable)')
    .option('--known-hosts <file>', 'known_hosts for an ssh transport')
    .option('--rollout <namespace/name>', 'recorded in the stop file (default: from -f)')
    .addOption(
      new Option(
        '--scope <scope>',
        'revision: nodes labelled with the revision; all: every node of the inventory (default: revision; all with --clear)',
      ).choices(['revision', 'all']),
    )
    .option('--stable-revision <hash>', 'the stable revision, whose DaemonSet also covers unlabelled nodes')
    .option('--clear', "remove this issuer's stop file of the revision instead (only once no agent of it runs any more); other issuers' files stay")
    .option('--force', 'with --clear: remove the file whatever revision it names')
    .addOption(
      new Option(
        '--issuer <issuer>',
        "whose stop file: manual (a person's, manual-REV / manual-all) or auto (the operator's auto-REV, e.g. to clear it when the operator cannot)",
      )
        .choices(['manual', 'auto'])
        .default('manual'),
    )
    .option('--dry-run', 'only list the nodes that would be reached')
    .action(async (cluster: string, o: BreakGlassOptions, cmd: Command) => {
      const g = globals(cmd);
      const outcome = await runBreakGlass(cluster, o, { clock: deps.clock, signal: deps.signal });
      out(g.output === 'text' ? renderBreakGlass(outcome) : serialize(g.output, outcome));
      exitCode = breakGlassExitCode(outcome);
    });

  breakGlass
    .command('status')
    .description(
      'list, per node, the stop files present and who issued them (auto: the operator, manual: a person, legacy: the single file of the previous layout), read-only and offline like break-glass',
    )
    .argument('<rollout>', 'the rollout ([namespace/]name); with -f, picks its TelemetryRollout in the file')
    .option('--cluster <name>', 'the target cluster (must match the inventory; required)')
    // The transport and inventory options are break-glass's own (commander parses them on the parent
    // wherever they appear), read here through optsWithGlobals.
    .addHelpText(
      'after',
      '\nAlso takes the options of break-glass that say where to look: --inventory FILE (required), -f FILE or --local-root DIR, --ssh-key and --known-hosts.',
    )
    .action(async (rollout: string, _o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const all = cmd.optsWithGlobals<BreakGlassStatusOptions>();
      const o: BreakGlassStatusOptions = {
        ...(all.cluster !== undefined ? { cluster: all.cluster } : {}),
        ...(all.inventory !== undefined ? { inventory: all.inventory } : {}),
        ...(all.filename !== undefined ? { filename: all.filename } : {}),
        ...(all.localRoot !== undefined ? { localRoot: all.localRoot } : {}),
        ...(all.sshKey !== undefined ? { sshKey: all.sshKey } : {}),
        ...(all.knownHosts !== undefined ? { knownHosts: all.knownHosts } : {}),
      };
      const report = await runBreakGlassStatus(rollout, o, { clock: deps.clock, signal: deps.signal });
      out(g.output === 'text' ? renderBreakGlassStatus(report) : serialize(g.output, report));
      exitCode = breakGlassStatusExitCode(report);
    });

  program
    .command('inventory')
    .description('node inventories the operator keeps for break-glass')
    .command('export')
    .description(
      "write a cluster's node inventory (kept by the operator in the management cluster) to a file or stdout, for break-glass when no API server answers",
    )
    .argument('<cluster>', 'the target cluster')
    .option('--file <path>', 'write it here, atomically (.yaml/.yml: YAML, else JSON); default: stdout (JSON with -o json, else YAML)')
    .option('--inventory-namespace <namespace>', "the operator's namespace, where inventories are kept", DEFAULT_INVENTORY_NAMESPACE)
    .action(async (cluster: string, o: { file?: string; inventoryNamespace: string }, cmd: Command) => {
      const g = globals(cmd);
      const namespace = o.inventoryNamespace;
      const { store, server } = await deps.inventories(connectOptions(g), namespace);
      let inventory: NodeInventory | undefined;
      try {
        // The signal cancels the store's requests; the race bounds the whole load, however many it makes.
        inventory = await withTimeout(store.load(cluster, AbortSignal.timeout(g.requestTimeout * 1000)), g.requestTimeout);
      } catch (err) {
        throw classifyError(err, { what: `read the node inventory of cluster ${cluster} in namespace ${namespace}`, server, timeoutSeconds: g.requestTimeout });
      }
      if (!inventory) {
        throw new CliError(
          `no node inventory of cluster ${cluster} in namespace ${namespace} (the operator records it while the cluster is healthy)`,
          EXIT.notFound,
        );
      }
      const doc = { apiVersion: 'telemetry.rollout.dev/v1alpha1', kind: 'NodeInventory', ...inventory };
      if (o.file === undefined) {
        out(serialize(g.output === 'json' ? 'json' : 'yaml', doc));
        return;
      }
      const { exportInventory } = await import('../breakglass/inventory.js');
      try {
        await exportInventory(inventory, o.file);
      } catch (err) {
        throw new CliError(`write ${o.file}: ${oneLine(err)}`, EXIT.failed, { cause: err });
      }
      const summary = { cluster, nodes: inventory.nodes.length, capturedAt: inventory.capturedAt, file: o.file };
      if (g.output !== 'text') out(serialize(g.output, summary));
      else out(`wrote the node inventory of cluster ${cluster} (${summary.nodes} nodes, captured ${summary.capturedAt}) to ${o.file}\n`);
    });

  return { program, exitCode: () => exitCode };
}

/** Runs the program on `argv` (the arguments after the program name) and returns the exit code. */
export async function run(argv: string[], deps: CliDeps): Promise<number> {
  const built = buildProgram(deps);
  try {
    await built.program.parseAsync(argv, { from: 'user' });
    return built.exitCode();
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its one-line message (or the help/version text).
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      return EXIT.usage;
    }
    const cli = err instanceof CliError ? err : undefined;
    deps.stderr.write(`error: ${cli ? cli.message : redactString(oneLine(err))}\n`);
    if (deps.env.TRO_DEBUG === '1' && err instanceof Error && err.stack) deps.stderr.write(`${err.stack}\n`);
    return cli ? cli.exitCode : EXIT.failed;
  }
}
