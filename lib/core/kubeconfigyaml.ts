/**
 * Kubeconfig text to a plain value, reporting a syntax error by position only: the YAML parser's own
 * messages quote the offending line, and in a kubeconfig that line may hold a token or a key. Its own
 * module because it loads the YAML parser (several MiB of RSS): the agent imports it only when it meets a
 * kubeconfig that is not JSON; the operator's Secret loader imports it directly.
 */
import { parseDocument } from 'yaml';

/** Aliases a kubeconfig may use: a few are legitimate, thousands are an expansion bomb. */
const MAX_ALIASES = 50;

/** Kubeconfig text that is not valid YAML; `line`/`column` (1-based) say where, when known, never what. */
export class KubeconfigSyntaxError extends Error {
  readonly line: number | undefined;
  readonly column: number | undefined;
  constructor(line?: number, column?: number, what = 'not valid YAML') {
    super(`${what}${line !== undefined ? ` (line ${line}, column ${column})` : ''}`);
    this.name = 'KubeconfigSyntaxError';
    this.line = line;
    this.column = column;
  }
}

/**
 * Parses kubeconfig text (YAML, of which JSON is a subset). A repeated key keeps its last value, as
 * client-go's YAML decoding does rather than failing; more than 50 aliases are refused. Throws
 * {@link KubeconfigSyntaxError}, without the parser's message or any `cause`.
 */
export function parseKubeconfigYaml(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false });
  const first = doc.errors[0];
  if (first !== undefined) {
    const before = text.slice(0, first.pos[0]).split('\n');
    throw new KubeconfigSyntaxError(before.length, (before[before.length - 1]?.length ?? 0) + 1);
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIASES }) as unknown;
  } catch {
    throw new KubeconfigSyntaxError(undefined, undefined, 'not valid YAML (aliases)');
  }
}
