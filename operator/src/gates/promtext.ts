/**
 * A parser for the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Why our own: the npm parsers that were checked drop labels or `_sum`/`_count` of labelled histograms, or
 * throw on `NaN`. The health gates need every bucket of every labelled series.
 *
 * The parser is a single forward scan over character codes (no regular expressions, no per-line string
 * splitting) so that a kube-apiserver `/metrics` page of several MB parses in a few tens of milliseconds;
 * `e2e/bench/gates-parse.ts` measures it.
 *
 * This file uses only erasable TypeScript syntax so that Node can run it directly (the benchmark does).
 */
import {
  BACKSLASH,
  CLOSE_BRACE,
  COMMA,
  CR,
  DOT,
  EQUALS,
  HASH,
  MINUS,
  OPEN_BRACE,
  PLUS,
  QUOTE,
  isBlank,
  isDigit,
  isLetterOrUnderscore,
  isMetricNameChar,
  isMetricNameStart,
  parseTimestamp,
  unescapeHelp,
} from './promlex.js';

/** The metric types of the 0.0.4 format; a family without a `# TYPE` line is `untyped`. */
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/** Label names to values of one sample. Has no prototype, so a label named `__proto__` is just a label. */
export type Labels = Readonly<Record<string, string>>;

/** One sample line: `name{labels} value [timestamp]`. */
export interface Sample {
  /** The sample's own name, e.g. `apiserver_request_duration_seconds_bucket` (not the family name). */
  readonly name: string;
  readonly labels: Labels;
  /** The value; may be `NaN`, `Infinity` or `-Infinity`. */
  readonly value: number;
  /** The optional timestamp in milliseconds since the epoch, when the line carried one. */
  readonly timestampMs?: number;
}

/**
 * A metric family: a `# TYPE`/`# HELP` name and the samples that belong to it. For a histogram `x` these
 * are `x_bucket`, `x_sum` and `x_count`; for a summary `x`, `x{quantile=..}`, `x_sum` and `x_count`.
 * Samples with no declared family form an `untyped` family of their own name.
 */
export interface MetricFamily {
  readonly name: string;
  readonly type: MetricType;
  /** The `# HELP` text with its escapes (`\\`, `\n`) resolved, when there was one. */
  readonly help?: string;
  /** The family's samples in page order; the same objects as in {@link ParsedMetrics.samples}. */
  readonly samples: readonly Sample[];
}

/** The result of parsing one page. */
export interface ParsedMetrics {
  /** Every sample in page order. */
  readonly samples: readonly Sample[];
  /** Families by family name (the `# TYPE` name, or the sample name for untyped samples). */
  readonly families: ReadonlyMap<string, MetricFamily>;
}

/** Malformed input. `line` is 1-based and is also part of the message. */
export class PromTextParseError extends Error {
  /** The 1-based line number of the offending line. */
  readonly line: number;
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = 'PromTextParseError';
    this.line = line;
  }
}

const METRIC_TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/**
 * Parses a float the way Go's `strconv.ParseFloat` does for the values found in exposition pages:
 * decimal and exponent notation, and case-insensitive `NaN`, `Inf`, `+Inf`, `-Inf`, `Infinity`.
 * Returns `undefined` for anything else (including hex, `""` and `1_000`, which `Number()` would accept or
 * misread).
 */
export function parsePromFloat(token: string): number | undefined {
  const n = token.length;
  if (n === 0) return undefined;
  let sawDigit = false;
  for (let i = 0; i < n; i++) {
    const c = token.charCodeAt(i);
    if (isDigit(c)) sawDigit = true;
    else if (c !== DOT && c !== PLUS && c !== MINUS && c !== 101 && c !== 69) {
      sawDigit = false;
      break;
    }
  }
  if (sawDigit) {
    const v = Number(token);
    return Number.isNaN(v) ? undefined : v;
  }
  switch (token.toLowerCase()) {
    case 'nan':
    case '+nan':
    case '-nan':
      return NaN;
    case 'inf':
    case '+inf':
    case 'infinity':
    case '+infinity':
      return Infinity;
    case '-inf':
    case '-infinity':
      return -Infinity;
    default:
      return undefined;
  }
}

/** A family while the page is being parsed. */
interface FamilyBuilder {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
  /** Whether a `# TYPE` line declared it (as opposed to a HELP line or a sample creating it). */
  typed: boolean;
}

/**
 * Parses a page in the Prometheus text format 0.0.4.
 *
 * Accepts: `# HELP` and `# TYPE` lines (at most one of each per family; TYPE before the family's first
 * sample), other `#` comments (ignored), blank lines, LF or CRLF line endings, leading blanks, label sets
 * with escapes `\\`, `\"`, `\n` and a trailing comma, values `+Inf`/`-Inf`/`NaN`, optional integer
 * timestamps, and exemplars (` # {..} v [ts]` after the value), which are ignored.
 *
 * @throws {PromTextParseError} on malformed input, naming the 1-based line number. Never returns a
 *   partial result.
 */
export function parsePrometheusText(text: string): ParsedMetrics {
  const samples: Sample[] = [];
  const families = new Map<string, FamilyBuilder>();
  // The family of the previous sample: consecutive samples nearly always share it, which avoids lookups.
  let lastFamily: FamilyBuilder | undefined;

  const len = text.length;
  let lineNo = 0;
  let pos = 0;
  while (pos < len) {
    lineNo++;
    let end = text.indexOf('\n', pos);
    if (end === -1) end = len;
    const next = end + 1;
    // Trim trailing CR (Windows line endings) and trailing blanks.
    while (end > pos) {
      const c = text.charCodeAt(end - 1);
      if (c === CR || isBlank(c)) end--;
      else break;
    }
    let p = pos;
    while (p < end && isBlank(text.charCodeAt(p))) p++;
    pos = next;
    if (p >= end) continue;

    if (text.charCodeAt(p) === HASH) {
      parseComment(text, p + 1, end, lineNo, families);
      continue;
    }

    // --- Sample line: name [{labels}] value [timestamp] [# exemplar] ---
    const nameStart = p;
    if (!isMetricNameStart(text.charCodeAt(p))) {
      throw new PromTextParseError(lineNo, `invalid metric name: ${excerpt(text, nameStart, end)}`);
    }
    p++;
    while (p < end && isMetricNameChar(text.charCodeAt(p))) p++;
    const name = text.slice(nameStart, p);
    while (p < end && isBlank(text.charCodeAt(p))) p++;

    const labels = Object.create(null) as Record<string, string>;
    if (p < end && text.charCodeAt(p) === OPEN_BRACE) {
      p = parseLabels(text, p + 1, end, lineNo, labels, name);
      // A blank between the label set and the value is required by the format but never ambiguous.
      while (p < end && isBlank(text.charCodeAt(p))) p++;
    } else if (p < end && p > nameStart && !isBlank(text.charCodeAt(p - 1))) {
      throw new PromTextParseError(lineNo, `invalid character ${JSON.stringify(text[p])} after metric name ${name}`);
    }
    if (p >= end) throw new PromTextParseError(lineNo, `missing value for ${name}`);

    const valueStart = p;
    while (p < end && !isBlank(text.charCodeAt(p))) p++;
    const valueToken = text.slice(valueStart, p);
    const value = parsePromFloat(valueToken);
    if (value === undefined) throw new PromTextParseError(lineNo, `invalid value ${JSON.stringify(valueToken)} for ${name}`);

    while (p < end && isBlank(text.charCodeAt(p))) p++;
    let timestampMs: number | undefined;
    if (p < end && text.charCodeAt(p) !== HASH) {
      const tsStart = p;
      while (p < end && !isBlank(text.charCodeAt(p))) p++;
      const tsToken = text.slice(tsStart, p);
      timestampMs = parseTimestamp(tsToken);
      if (timestampMs === undefined) {
        throw new PromTextParseError(lineNo, `invalid timestamp ${JSON.stringify(tsToken)} for ${name}`);
      }
      while (p < end && isBlank(text.charCodeAt(p))) p++;
    }
    // Whatever follows a `#` here is an exemplar; the gates do not use exemplars.
    if (p < end && text.charCodeAt(p) !== HASH) {
      throw new PromTextParseError(lineNo, `unexpected text after the value of ${name}: ${excerpt(text, p, end)}`);
    }

    const sample: Sample = timestampMs === undefined ? { name, labels, value } : { name, labels, value, timestampMs };
    samples.push(sample);
    const family = lastFamily !== undefined && belongsTo(lastFamily, name) ? lastFamily : familyForSample(families, name);
    family.samples.push(sample);
    lastFamily = family;
  }
  return { samples, families };
}

/** Parses `{a="b",c="d"}` from just after the `{`; returns the position after the `}`. */
function parseLabels(text: string, p: number, end: number, lineNo: number, labels: Record<string, string>, metric: string): number {
  for (;;) {
    while (p < end && isBlank(text.charCodeAt(p))) p++;
    if (p >= end) throw new PromTextParseError(lineNo, `unterminated label set of ${metric}`);
    if (text.charCodeAt(p) === CLOSE_BRACE) return p + 1;

    const nameStart = p;
    if (!isLetterOrUnderscore(text.charCodeAt(p))) {
      throw new PromTextParseError(lineNo, `invalid label name in ${metric}: ${excerpt(text, p, end)}`);
    }
    p++;
    while (p < end) {
      const c = text.charCodeAt(p);
      if (isLetterOrUnderscore(c) || isDigit(c)) p++;
      else break;
    }
    const labelName = text.slice(nameStart, p);
    while (p < end && isBlank(text.charCodeAt(p))) p++;
    if (p >= end || text.charCodeAt(p) !== EQUALS) {
      throw new PromTextParseError(lineNo, `expected "=" after label name ${labelName} of ${metric}`);
    }
    p++;
    while (p < end && isBlank(text.charCodeAt(p))) p++;
    if (p >= end || text.charCodeAt(p) !== QUOTE) {
      throw new PromTextParseError(lineNo, `expected a quoted value for label ${labelName} of ${metric}`);
    }
    p++;

    // Label value: a plain slice unless it contains escapes (rare), so most values cost one scan.
    const valueStart = p;
    let escaped: string | undefined;
    let chunkStart = p;
    for (;;) {
      if (p >= end) throw new PromTextParseError(lineNo, `unterminated value of label ${labelName} of ${metric}`);
      const c = text.charCodeAt(p);
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        const e = p + 1 < end ? text.charCodeAt(p + 1) : -1;
        let replacement: string;
        if (e === BACKSLASH) replacement = '\\';
        else if (e === QUOTE) replacement = '"';
        else if (e === 110 /* n */) replacement = '\n';
        else {
          throw new PromTextParseError(lineNo, `invalid escape sequence in value of label ${labelName} of ${metric}`);
        }
        escaped = (escaped ?? '') + text.slice(chunkStart, p) + replacement;
        p += 2;
        chunkStart = p;
        continue;
      }
      p++;
    }
    const labelValue = escaped === undefined ? text.slice(valueStart, p) : escaped + text.slice(chunkStart, p);
    p++; // closing quote
    if (labelName in labels) throw new PromTextParseError(lineNo, `duplicate label ${labelName} in ${metric}`);
    labels[labelName] = labelValue;

    while (p < end && isBlank(text.charCodeAt(p))) p++;
    if (p >= end) throw new PromTextParseError(lineNo, `unterminated label set of ${metric}`);
    const c = text.charCodeAt(p);
    if (c === COMMA) {
      p++;
      continue;
    }
    if (c === CLOSE_BRACE) return p + 1;
    throw new PromTextParseError(lineNo, `expected "," or "}" after label ${labelName} of ${metric}: ${excerpt(text, p, end)}`);
  }
}

/** Handles a line starting with `#`; `p` is just after the `#`. Only HELP and TYPE mean anything. */
function parseComment(text: string, p: number, end: number, lineNo: number, families: Map<string, FamilyBuilder>): void {
  while (p < end && isBlank(text.charCodeAt(p))) p++;
  const keywordStart = p;
  while (p < end && !isBlank(text.charCodeAt(p))) p++;
  const keyword = text.slice(keywordStart, p);
  if (keyword !== 'HELP' && keyword !== 'TYPE') return; // an ordinary comment

  while (p < end && isBlank(text.charCodeAt(p))) p++;
  const nameStart = p;
  if (p >= end || !isMetricNameStart(text.charCodeAt(p))) {
    throw new PromTextParseError(lineNo, `# ${keyword} without a valid metric name`);
  }
  p++;
  while (p < end && isMetricNameChar(text.charCodeAt(p))) p++;
  const name = text.slice(nameStart, p);
  if (p < end && !isBlank(text.charCodeAt(p))) {
    throw new PromTextParseError(lineNo, `invalid character ${JSON.stringify(text[p])} after metric name ${name} in # ${keyword}`);
  }

  if (keyword === 'HELP') {
    // The rest of the line after the blanks is the docstring (trailing blanks were trimmed with the line).
    while (p < end && isBlank(text.charCodeAt(p))) p++;
    const help = unescapeHelp(text.slice(p, end));
    const existing = families.get(name);
    if (existing === undefined) {
      families.set(name, { name, type: 'untyped', help, samples: [], typed: false });
    } else if (existing.help !== undefined) {
      throw new PromTextParseError(lineNo, `second # HELP line for ${name}`);
    } else {
      existing.help = help;
    }
    return;
  }

  while (p < end && isBlank(text.charCodeAt(p))) p++;
  const typeStart = p;
  while (p < end && !isBlank(text.charCodeAt(p))) p++;
  const type = text.slice(typeStart, p);
  while (p < end && isBlank(text.charCodeAt(p))) p++;
  if (!METRIC_TYPES.has(type) || p < end) {
    throw new PromTextParseError(lineNo, `invalid metric type ${JSON.stringify(text.slice(typeStart, end))} for ${name}`);
  }
  const existing = families.get(name);
  if (existing === undefined) {
    families.set(name, { name, type: type as MetricType, samples: [], typed: true });
  } else if (existing.typed) {
    throw new PromTextParseError(lineNo, `second # TYPE line for ${name}`);
  } else if (existing.samples.length > 0) {
    throw new PromTextParseError(lineNo, `# TYPE line for ${name} after its samples`);
  } else {
    existing.type = type as MetricType;
    existing.typed = true;
  }
}

/** The suffixes a family's samples may carry, by type (`_created` comes from OpenMetrics-style pages). */
function suffixAllowed(type: MetricType, suffix: string): boolean {
  switch (type) {
    case 'histogram':
      return suffix === '_bucket' || suffix === '_sum' || suffix === '_count' || suffix === '_created';
    case 'summary':
      return suffix === '_sum' || suffix === '_count' || suffix === '_created';
    case 'counter':
      return suffix === '_total' || suffix === '_created';
    default:
      return false;
  }
}

/** The suffixes a sample name may add to its family's name (which ones a type allows: {@link suffixAllowed}). */
export const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created'];

function belongsTo(family: FamilyBuilder, sampleName: string): boolean {
  if (sampleName === family.name) return true;
  if (family.type === 'gauge' || family.type === 'untyped') return false;
  if (!sampleName.startsWith(family.name)) return false;
  return suffixAllowed(family.type, sampleName.slice(family.name.length));
}

function familyForSample(families: Map<string, FamilyBuilder>, sampleName: string): FamilyBuilder {
  const exact = families.get(sampleName);
  if (exact !== undefined) return exact;
  for (const suffix of SUFFIXES) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = families.get(sampleName.slice(0, -suffix.length));
    if (base !== undefined && suffixAllowed(base.type, suffix)) return base;
  }
  const created: FamilyBuilder = { name: sampleName, type: 'untyped', samples: [], typed: false };
  families.set(sampleName, created);
  return created;
}

/** A short, single-line excerpt for error messages. */
function excerpt(text: string, from: number, to: number): string {
  const s = text.slice(from, Math.min(to, from + 60));
  return JSON.stringify(to - from > 60 ? `${s}…` : s);
}
