/**
 * Offline validation of TelemetryRollout objects, with no cluster: the CRD's structural schema (types,
 * enums, bounds, required fields, list semantics, unknown fields) plus the same CEL rules
 * (`x-kubernetes-validations`) the API server evaluates, read from the CRD itself so they cannot drift.
 * Defaults are applied first, as the API server does. Messages name the offending field path in the
 * API server's own notation (`spec.strategy.stages[0].nodeSteps`).
 */
import { Environment } from '@marcbachmann/cel-js';
import { API_VERSION, KIND, rolloutSchema, type SchemaNode } from './crd.js';

/** One validation failure: the field path and what is wrong with it. */
export interface FieldError {
  /** Path of the offending field, e.g. `spec.targets.clusters[1]`. */
  path: string;
  /** What is wrong, in the API server's words where there is an equivalent. */
  message: string;
}

/** The outcome of validating one object. */
export interface ValidationResult {
  /** True when there are no errors. */
  valid: boolean;
  /** Every error found (not only the first). */
  errors: FieldError[];
  /** The object with schema defaults applied (a copy; the input is not modified). */
  defaulted: Record<string, unknown>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep copy of a JSON value. A JSON round-trip rather than structuredClone: the copy must be made of
 * this realm's Array and Object, which cel-js checks with instanceof (jest runs modules in a VM realm). */
function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * Applies schema defaults in place, recursively, as the API server does on read and write: a missing
 * property with a default gets a copy of it, and defaulting then continues inside that value.
 */
export function applyDefaults(schema: SchemaNode, value: unknown): void {
  if (isPlainObject(value)) {
    if (schema.properties) {
      for (const [name, sub] of Object.entries(schema.properties)) {
        if (value[name] === undefined && sub.default !== undefined) value[name] = clone(sub.default);
        if (value[name] !== undefined) applyDefaults(sub, value[name]);
      }
    } else if (isPlainObject(schema.additionalProperties)) {
      for (const v of Object.values(value)) applyDefaults(schema.additionalProperties, v);
    }
  } else if (Array.isArray(value) && schema.items) {
    for (const item of value) applyDefaults(schema.items, item);
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(typeName(v));
}

/** The cel-js environment with the Kubernetes CEL library functions our rules use. */
function makeCelEnvironment(): Environment {
  return new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false }).registerFunction(
    'list.isSorted(): bool',
    // Kubernetes' list library: true when every element is <= the next.
    (l: unknown[]) => {
      for (let i = 1; i < l.length; i++) if ((l[i - 1] as number | bigint) > (l[i] as number | bigint)) return false;
      return true;
    },
  );
}

let celEnv: Environment | undefined;

/**
 * Converts a JSON value into what CEL sees in Kubernetes: schema integers become CEL ints (bigint),
 * numbers stay doubles, so `self.x == 100` behaves as on the API server.
 */
function toCel(schema: SchemaNode | undefined, v: unknown): unknown {
  if (schema?.type === 'integer' && typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return Array.from(v, (x) => toCel(schema?.items, x));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const sub = schema?.properties?.[k] ?? (isPlainObject(schema?.additionalProperties) ? schema.additionalProperties : undefined);
      out[k] = toCel(sub, x);
    }
    return out;
  }
  return v;
}

/**
 * Validates `value` against a structural schema node and its CEL rules. Unknown fields are errors
 * (kubectl's strict field validation) except where the schema preserves them.
 */
export function validateNode(schema: SchemaNode, value: unknown, path: string, errors: FieldError[]): void {
  const before = errors.length;
  const p = path || '<root>';
  if (value === null || value === undefined) {
    if (!schema.nullable) errors.push({ path: p, message: 'Invalid value: "null": must not be null' });
    return;
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) {
      errors.push({ path: p, message: `Invalid value: ${describeValue(value)}: must be an integer or a string` });
    }
    return;
  }
  const t = schema.type;
  const actual = typeName(value);
  const typeOk = t === undefined || (t === 'number' ? actual === 'number' || actual === 'integer' : actual === t);
  if (!typeOk) {
    errors.push({ path: p, message: `Invalid value: "${actual}": ${p} in body must be of type ${t}: "${actual}"` });
    return;
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) {
    errors.push({
      path: p,
      message: `Unsupported value: ${describeValue(value)}: supported values: ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`,
    });
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined) {
      const bad = schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum;
      if (bad)
        errors.push({
          path: p,
          message: `Invalid value: ${value}: ${p} in body should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${schema.minimum}`,
        });
    }
    if (schema.maximum !== undefined) {
      const bad = schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum;
      if (bad)
        errors.push({
          path: p,
          message: `Invalid value: ${value}: ${p} in body should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${schema.maximum}`,
        });
    }
  }
  if (typeof value === 'string') {
    const len = [...value].length;
    if (schema.minLength !== undefined && len < schema.minLength) {
      errors.push({ path: p, message: `Invalid value: ${describeValue(value)}: ${p} in body should be at least ${schema.minLength} chars long` });
    }
    if (schema.maxLength !== undefined && len > schema.maxLength) {
      errors.push({ path: p, message: `Too long: may not be more than ${schema.maxLength} bytes` });
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
      errors.push({ path: p, message: `Invalid value: ${describeValue(value)}: ${p} in body should match '${schema.pattern}'` });
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      errors.push({ path: p, message: `Invalid value: ${value.length}: ${p} in body should have at least ${schema.minItems} items` });
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      errors.push({ path: p, message: `Too many: ${value.length}: must have at most ${schema.maxItems} items` });
    }
    const listType = schema['x-kubernetes-list-type'];
    if (listType === 'set') {
      value.forEach((v, i) => {
        if (value.findIndex((w) => JSON.stringify(w) === JSON.stringify(v)) < i)
          errors.push({ path: `${p}[${i}]`, message: `Duplicate value: ${describeValue(v)}` });
      });
    } else if (listType === 'map') {
      const keys = schema['x-kubernetes-list-map-keys'] ?? [];
      const seen = new Set<string>();
      value.forEach((v, i) => {
        if (!isPlainObject(v)) return;
        const k = JSON.stringify(keys.map((key) => v[key]));
        if (seen.has(k))
          errors.push({ path: `${p}[${i}]`, message: `Duplicate value: ${JSON.stringify(Object.fromEntries(keys.map((key) => [key, v[key]])))}` });
        seen.add(k);
      });
    }
    if (schema.items) value.forEach((v, i) => validateNode(schema.items as SchemaNode, v, `${p}[${i}]`, errors));
  }
  if (isPlainObject(value)) {
    for (const r of schema.required ?? []) {
      if (value[r] === undefined) errors.push({ path: `${path ? `${path}.` : ''}${r}`, message: 'Required value' });
    }
    for (const [k, v] of Object.entries(value)) {
      const sub = schema.properties?.[k];
      const child = path ? `${path}.${k}` : k;
      if (sub) validateNode(sub, v, child, errors);
      else if (isPlainObject(schema.additionalProperties)) validateNode(schema.additionalProperties, v, child, errors);
      else if (!schema['x-kubernetes-preserve-unknown-fields'] && schema.properties && path !== 'metadata') {
        errors.push({ path: child, message: 'field not declared in schema' });
      }
    }
  }
  // CEL rules run only on values that are well-formed below them, as a type error would make the
  // rule itself fail to evaluate.
  const rules = schema['x-kubernetes-validations'];
  if (rules && errors.length === before) {
    celEnv ??= makeCelEnvironment();
    const self = toCel(schema, value);
    for (const rule of rules) {
      let ok: unknown;
      try {
        ok = celEnv.evaluate(rule.rule, { self });
      } catch (err) {
        errors.push({ path: p, message: `Invalid value: rule ${JSON.stringify(rule.rule)} could not be evaluated: ${(err as Error).message}` });
        continue;
      }
      if (ok !== true) {
        const at = rule.fieldPath ? `${p}${rule.fieldPath}` : p;
        errors.push({
          path: at,
          message: `Invalid value: "${typeName(value) === 'integer' ? 'integer' : typeName(value)}": ${rule.message ?? `failed rule: ${rule.rule}`}`,
        });
      }
    }
  }
}

/**
 * Validates a whole TelemetryRollout manifest offline: apiVersion, kind, metadata.name, and the spec
 * (and status, if given) against the CRD, after applying the CRD's defaults.
 */
export function validateRollout(obj: unknown): ValidationResult {
  const errors: FieldError[] = [];
  if (!isPlainObject(obj)) {
    return { valid: false, errors: [{ path: '<root>', message: 'a TelemetryRollout must be an object' }], defaulted: {} };
  }
  const defaulted = clone(obj);
  if (defaulted.apiVersion !== API_VERSION)
    errors.push({ path: 'apiVersion', message: `Unsupported value: ${describeValue(defaulted.apiVersion)}: supported values: "${API_VERSION}"` });
  if (defaulted.kind !== KIND) errors.push({ path: 'kind', message: `Unsupported value: ${describeValue(defaulted.kind)}: supported values: "${KIND}"` });
  const meta = defaulted.metadata;
  const name = isPlainObject(meta) ? meta.name : undefined;
  if (typeof name !== 'string' || name === '') errors.push({ path: 'metadata.name', message: 'Required value: name is required' });
  else if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name) || name.length > 253) {
    errors.push({
      path: 'metadata.name',
      message: `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`,
    });
  }
  const schema = rolloutSchema();
  applyDefaults(schema, defaulted);
  validateNode(schema, defaulted, '', errors);
  return { valid: errors.length === 0, errors, defaulted };
}
