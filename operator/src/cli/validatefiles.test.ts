import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { validBase } from '../../../testkit/operator/api/fixtures.js';
import { CliError, EXIT } from './errors.js';
import { renderValidation, validateFiles, validateText } from './validatefiles.js';

const dir = mkdtempSync(join(tmpdir(), 'tro-cli-validate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const valid = stringify(validBase('good'));
const invalidObj = validBase('bad');
(invalidObj.spec as { strategy?: unknown }).strategy = { stages: [{ name: 'canary', nodeSteps: [50, 10] }] };
const invalid = stringify(invalidObj);
const namespace = stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'fleet' } });

describe('validateText', () => {
  it('validates every document, skips other kinds and empty documents', () => {
    const results = validateText('f.yaml', [valid, namespace, '', invalid].join('---\n'));
    expect(results.map((r) => [r.doc, r.name, r.result])).toEqual([
      [1, 'good', 'valid'],
      [2, 'fleet', 'skipped'],
      [4, 'bad', 'invalid'],
    ]);
    expect(results[2]?.errors.map((e) => e.path)).toContain('spec.strategy.stages[0].nodeSteps');
  });

  it('reports YAML syntax errors and documents without a kind', () => {
    const [broken] = validateText('f.yaml', 'spec: [unclosed\n');
    expect(broken).toMatchObject({ doc: 1, result: 'invalid' });
    expect(broken?.errors[0]?.path).toBe('<yaml>');
    const [kindless] = validateText('f.yaml', 'metadata: { name: x }\n');
    expect(kindless?.result).toBe('invalid');
    expect(kindless?.errors.map((e) => e.path)).toContain('kind');
  });

  it('renders `file: doc N: path: message` lines', () => {
    const text = renderValidation(validateText('f.yaml', [valid, namespace, invalid].join('---\n')));
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('f.yaml: doc 1 (good): valid');
    expect(lines[1]).toBe('f.yaml: doc 2 (fleet): skipped (kind Namespace is not TelemetryRollout)');
    expect(lines.slice(2).every((l) => l.startsWith('f.yaml: doc 3: spec.'))).toBe(true);
    expect(text).toContain('f.yaml: doc 3: spec.strategy.stages[0].nodeSteps: ');
  });
});

describe('validateFiles', () => {
  it('reads files, directories (sorted, manifests only) and stdin', () => {
    const sub = join(dir, 'manifests');
    mkdirSync(sub);
    writeFileSync(join(sub, 'b.yaml'), invalid);
    writeFileSync(join(sub, 'a.yml'), valid);
    writeFileSync(join(sub, 'notes.txt'), 'not a manifest');
    const results = validateFiles([sub, '-'], () => JSON.stringify(validBase('from-stdin')));
    expect(results.map((r) => [r.file, r.name, r.result])).toEqual([
      [join(sub, 'a.yml'), 'good', 'valid'],
      [join(sub, 'b.yaml'), 'bad', 'invalid'],
      ['-', 'from-stdin', 'valid'],
    ]);
  });

  it('is a usage error when a path does not exist or a directory has no manifests', () => {
    const missing = (() => {
      try {
        validateFiles([join(dir, 'missing.yaml')], () => '');
      } catch (err) {
        return err;
      }
    })();
    expect(missing).toBeInstanceOf(CliError);
    expect(missing).toMatchObject({ exitCode: EXIT.usage, message: `${join(dir, 'missing.yaml')}: no such file or directory` });
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(() => validateFiles([empty], () => '')).toThrow(`${empty}: the directory has no .yaml, .yml or .json files`);
  });
});
