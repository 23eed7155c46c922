import { describe, expect, it } from '@jest/globals';
import type { CollectorSpec } from '../api/types.generated.js';
import { canonicalJson, revisionOf, rolloutLabelValue } from './revision.js';

const base: CollectorSpec = {
  image: 'c:1',
  imagePullPolicy: 'IfNotPresent',
  namespace: 'telemetry-system',
  config: { intervalSeconds: 10, logLevel: 'info' },
} as CollectorSpec;

describe('revision', () => {
  it('is independent of key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    const reordered = {
      config: { logLevel: 'info', intervalSeconds: 10 },
      namespace: 'telemetry-system',
      imagePullPolicy: 'IfNotPresent',
      image: 'c:1',
    } as CollectorSpec;
    expect(revisionOf(reordered)).toBe(revisionOf(base));
  });
  it('changes with image and config, and is a 10-hex label value', () => {
    const r = revisionOf(base);
    expect(r).toMatch(/^[0-9a-f]{10}$/);
    expect(revisionOf({ ...base, image: 'c:2' })).not.toBe(r);
    expect(revisionOf({ ...base, config: { intervalSeconds: 11 } } as CollectorSpec)).not.toBe(r);
  });
  it('keeps rollout label values within 63 characters and unique', () => {
    expect(rolloutLabelValue('ns', 'name')).toBe('ns.name');
    const a = rolloutLabelValue('n'.repeat(40), 'x'.repeat(40));
    const b = rolloutLabelValue('n'.repeat(40), 'x'.repeat(39) + 'y');
    expect(a.length).toBeLessThanOrEqual(63);
    expect(a).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    expect(a).not.toBe(b);
  });
});
