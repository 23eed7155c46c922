import { describe, expect, it } from '@jest/globals';
import { Environment } from '@marcbachmann/cel-js';
import { loadCrd, rolloutSchema, type SchemaNode } from './crd.js';
import { validateNode, type FieldError } from './validate.js';

/** Visits every schema node with its path. */
function walk(n: SchemaNode, path: string, fn: (n: SchemaNode, path: string) => void): void {
  fn(n, path);
  for (const [k, v] of Object.entries(n.properties ?? {})) walk(v, `${path}.${k}`, fn);
  if (n.items) walk(n.items, `${path}[]`, fn);
  if (n.additionalProperties && typeof n.additionalProperties === 'object') walk(n.additionalProperties, `${path}{}`, fn);
}

const ALLOWED_KEYS = new Set([
  'type',
  'description',
  'format',
  'properties',
  'additionalProperties',
  'items',
  'required',
  'enum',
  'default',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'nullable',
  'anyOf',
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-validations',
  'x-kubernetes-embedded-resource',
]);

describe('the CRD', () => {
  const crd = loadCrd();
  const root = rolloutSchema();

  it('names the API as the contract says', () => {
    expect(crd.metadata.name).toBe('telemetryrollouts.telemetry.rollout.dev');
    expect(crd.spec.group).toBe('telemetry.rollout.dev');
    expect(crd.spec.names).toMatchObject({ kind: 'TelemetryRollout', plural: 'telemetryrollouts', shortNames: ['tro'] });
    expect(crd.spec.names.categories?.length).toBeGreaterThan(0);
    const v = crd.spec.versions[0]!;
    expect(v.name).toBe('v1alpha1');
    expect((v as unknown as { subresources: unknown }).subresources).toEqual({ status: {} });
    const cols = (v.additionalPrinterColumns ?? []).map((c) => [c.name.toUpperCase(), c.priority ?? 0]);
    expect(cols).toEqual([
      ['PHASE', 0],
      ['STAGE', 0],
      ['PROGRESS', 0],
      ['HEALTH', 0],
      ['AGE', 0],
      ['REVISION', 1],
      ['MESSAGE', 1],
    ]);
  });

  it('is structural: every node typed, no additionalProperties beside properties, no $ref, only allowed keys', () => {
    const problems: string[] = [];
    walk(root, '', (n, path) => {
      for (const k of Object.keys(n)) if (!ALLOWED_KEYS.has(k)) problems.push(`${path}: keyword ${k} is not allowed`);
      if (n['x-kubernetes-int-or-string']) {
        if (n.type !== undefined) problems.push(`${path}: int-or-string must not set type`);
        const anyOfTypes = (n.anyOf ?? []).map((a) => a.type).sort();
        if (n.anyOf && JSON.stringify(anyOfTypes) !== JSON.stringify(['integer', 'string'])) problems.push(`${path}: bad anyOf`);
      } else if (!n.type) problems.push(`${path}: no type`);
      if (n.anyOf && !n['x-kubernetes-int-or-string']) problems.push(`${path}: anyOf outside int-or-string`);
      if (n.properties && n.additionalProperties !== undefined) problems.push(`${path}: additionalProperties beside properties`);
      if (n.type === 'array' && !n.items) problems.push(`${path}: array without items`);
      const lt = n['x-kubernetes-list-type'];
      if (lt && n.type !== 'array') problems.push(`${path}: list-type on a non-array`);
      if (lt === 'map') {
        const keys = n['x-kubernetes-list-map-keys'] ?? [];
        if (!keys.length) problems.push(`${path}: list-type map without keys`);
        for (const k of keys) if (!(n.items?.required ?? []).includes(k)) problems.push(`${path}: map key ${k} not required in items`);
      }
      if (n['x-kubernetes-list-map-keys'] && lt !== 'map') problems.push(`${path}: list-map-keys without list-type map`);
      for (const r of n.required ?? []) if (!n.properties?.[r]) problems.push(`${path}: required ${r} is not a property`);
    });
    expect(problems).toEqual([]);
  });

  it('describes every field of spec and status, so kubectl explain teaches the API', () => {
    const missing: string[] = [];
    for (const top of ['spec', 'status'] as const) {
      walk(root.properties![top]!, top, (n, path) => {
        if (!n.description && !path.endsWith('[]') && !path.endsWith('{}')) missing.push(path);
      });
    }
    expect(missing).toEqual([]);
  });

  it('has defaults that are valid against their own schema', () => {
    const errors: FieldError[] = [];
    walk(root, '', (n, path) => {
      if (n.default !== undefined) validateNode(n, JSON.parse(JSON.stringify(n.default)), `default of ${path}`, errors);
    });
    expect(errors).toEqual([]);
  });

  it('has CEL rules that all compile', () => {
    const env = new Environment({ unlistedVariablesAreDyn: true }).registerFunction('list.isSorted(): bool', () => true);
    const rules: string[] = [];
    walk(root, '', (n) => rules.push(...(n['x-kubernetes-validations'] ?? []).map((r) => r.rule)));
    expect(rules.length).toBeGreaterThanOrEqual(8);
    for (const r of rules) expect(() => env.parse(r)).not.toThrow();
  });
});
