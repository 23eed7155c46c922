import { describe, expect, it } from '@jest/globals';
import { COLLECTOR_CONFIG_OPENAPI } from '#collector/config.js';
import { rolloutSchema, type SchemaNode } from './crd.js';

/** The validation-relevant shape of a schema: field names, types, enums and bounds (not prose). */
function shape(n: SchemaNode | undefined): unknown {
  if (!n) return undefined;
  const out: Record<string, unknown> = { type: n.type };
  for (const k of ['enum', 'minimum', 'maximum', 'exclusiveMinimum', 'minItems', 'maxItems', 'pattern', 'maxLength'] as const)
    if (n[k] !== undefined) out[k] = n[k];
  if (n.properties) out.properties = Object.fromEntries(Object.entries(n.properties).map(([k, v]) => [k, shape(v)]));
  if (n.items) out.items = shape(n.items);
  return out;
}

describe("the CRD's copy of the collector config schema", () => {
  it('has the same fields, types, enums and bounds as the collector validates', () => {
    const crd = rolloutSchema().properties?.spec?.properties?.collector?.properties?.config;
    expect(shape(crd)).toEqual(shape(COLLECTOR_CONFIG_OPENAPI as unknown as SchemaNode));
  });
});
