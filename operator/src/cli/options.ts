/**
 * The global options of `kubectl-tro` and what the commands share about them: `-o` formats and
 * serialisation, `--request-timeout` for calls that take no AbortSignal, `--version`, the help text and
 * the default inventory namespace. The commands themselves are in program.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { stringify } from 'yaml';
import { findRepoRoot } from '../api/crd.js';
import type { TelemetryRollout } from '../api/types.generated.js';
import { EXIT_CODES_HELP } from './errors.js';

/** Where the operator keeps node inventories by default: its own namespace (config/ installs it there). */
export const DEFAULT_INVENTORY_NAMESPACE = 'telemetry-rollout-system';

/** The output formats of `-o`. */
export const OUTPUT_FORMATS = ['text', 'json', 'yaml'] as const;

/** One of {@link OUTPUT_FORMATS}. */
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The global options, as commander parses them. */
export interface GlobalOptions {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  output: OutputFormat;
  requestTimeout: number;
  showManagedFields?: boolean;
}

/** Parses a `--*-timeout` value: a positive number of seconds (commander shows the error). */
export function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of seconds');
  return n;
}

/** This package's version, for `--version`; `unknown` when package.json cannot be read. */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(findRepoRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    // The version is informational; a missing package.json must not break the plugin.
    return 'unknown';
  }
}

/** The text after `--help`: examples, colour and debugging, the exit codes. */
export const HELP_AFTER = `
Examples:
  kubectl tro list -A
  kubectl tro get collector-v2 --watch
  kubectl tro get collector-v2 -o yaml
  kubectl tro pause collector-v2
  kubectl tro abort collector-v2 --reason "p99 regression on prod-east-1"
  kubectl tro validate -f config/samples/

Colour is used only on a terminal, and never when NO_COLOR is set. TRO_DEBUG=1 prints stack traces.

${EXIT_CODES_HELP}
`;

/**
 * A copy of the rollout without metadata.managedFields, which kubectl also hides by default: it is
 * server bookkeeping that would bury the status.
 */
export function withoutManagedFields(ro: TelemetryRollout): TelemetryRollout {
  if (!ro.metadata || !('managedFields' in ro.metadata)) return ro;
  const { managedFields: _dropped, ...metadata } = ro.metadata;
  return { ...ro, metadata };
}

/** Serialises an object for `-o json|yaml`. */
export function serialize(format: Exclude<OutputFormat, 'text'>, value: unknown): string {
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value);
}

/**
 * `work`, or a TimeoutError after `seconds` (for calls that take no AbortSignal; the process exits when
 * the command ends, so the abandoned call does not linger).
 */
export async function withTimeout<T>(work: Promise<T>, seconds: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new DOMException(`no answer within ${seconds}s`, 'TimeoutError')), seconds * 1000);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
