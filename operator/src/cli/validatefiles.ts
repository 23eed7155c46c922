/**
 * `kubectl tro validate -f FILE`: offline validation of TelemetryRollout manifests with the same rules
 * as the CRD (operator/src/api/validate.ts), over multi-document YAML (or JSON), several files, a
 * directory's *.yaml/*.yml/*.json files, or `-` for stdin.
 *
 * Documents of other kinds are skipped (a manifest bundle may hold a Namespace and Secrets next to the
 * rollout); empty documents are ignored; YAML syntax errors are reported as errors of their document.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KIND } from '../api/crd.js';
import { validateRollout, type FieldError } from '../api/validate.js';
import { CliError, EXIT } from './errors.js';

/** The outcome for one document. */
export interface DocumentResult {
  /** The file as given (`-` for stdin). */
  file: string;
  /** 1-based position of the document in the file. */
  doc: number;
  /** metadata.name, when there is one. */
  name?: string;
  /** The document's kind, when there is one. */
  kind?: string;
  /** `skipped`: not a TelemetryRollout. */
  result: 'valid' | 'invalid' | 'skipped';
  errors: FieldError[];
}

/** Validates the documents of one file's text. */
export function validateText(file: string, text: string): DocumentResult[] {
  const results: DocumentResult[] = [];
  parseAllDocuments(text).forEach((d, i) => {
    const doc = i + 1;
    if (d.errors.length) {
      results.push({ file, doc, result: 'invalid', errors: d.errors.map((e) => ({ path: '<yaml>', message: e.message.split('\n')[0] ?? e.code })) });
      return;
    }
    const obj: unknown = d.toJS();
    if (obj === null || obj === undefined) return;
    const meta = (obj as { metadata?: { name?: unknown } }).metadata;
    const name = typeof meta?.name === 'string' ? meta.name : undefined;
    const kind = typeof (obj as { kind?: unknown }).kind === 'string' ? (obj as { kind: string }).kind : undefined;
    const base = { file, doc, ...(name !== undefined ? { name } : {}), ...(kind !== undefined ? { kind } : {}) };
    // A document that says it is something else is not ours to judge; one with no kind at all is
    // judged (validateRollout then reports the missing kind).
    if (kind !== undefined && kind !== KIND) {
      results.push({ ...base, result: 'skipped', errors: [] });
      return;
    }
    const r = validateRollout(obj);
    results.push({ ...base, result: r.valid ? 'valid' : 'invalid', errors: r.errors });
  });
  return results;
}

/** Expands the `-f` arguments: directories to their manifest files (sorted, not recursive). */
export function expandPaths(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push(p);
      continue;
    }
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CliError(`${p}: ${code === 'ENOENT' ? 'no such file or directory' : `cannot read (${code ?? 'error'})`}`, EXIT.usage, { cause: err });
    }
    if (!isDir) {
      out.push(p);
      continue;
    }
    const files = readdirSync(p)
      .filter((f) => /\.(ya?ml|json)$/.test(f))
      .sort()
      .map((f) => join(p, f));
    if (!files.length) throw new CliError(`${p}: the directory has no .yaml, .yml or .json files`, EXIT.usage);
    out.push(...files);
  }
  return out;
}

/** Reads and validates every file; `readStdin` supplies the text of `-`. */
export function validateFiles(paths: string[], readStdin: () => string): DocumentResult[] {
  const results: DocumentResult[] = [];
  for (const file of expandPaths(paths)) {
    let text: string;
    try {
      text = file === '-' ? readStdin() : readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.usage, { cause: err });
    }
    results.push(...validateText(file, text));
  }
  return results;
}

/**
 * The text report: one `file: doc N: path: message` line per error, and `file: doc N (name): valid`
 * or `... skipped (kind K)` per other document.
 */
export function renderValidation(results: DocumentResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const where = `${r.file}: doc ${r.doc}`;
    const named = r.name ? `${where} (${r.name})` : where;
    if (r.result === 'valid') lines.push(`${named}: valid`);
    else if (r.result === 'skipped') lines.push(`${named}: skipped (kind ${r.kind ?? '?'} is not ${KIND})`);
    else for (const e of r.errors) lines.push(`${where}: ${e.path}: ${e.message}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}
