import { describe, expect, it } from '@jest/globals';
import { TerminalError } from '../util/errors.js';
import { matchesSelector, selectorString, validateSelector, type LabelSelector } from './selector.js';

describe('matchesSelector', () => {
  const labels = { env: 'prod', region: 'eu', tier: 'gold' };
  it.each<[string, LabelSelector, Record<string, string> | undefined, boolean]>([
    ['empty selector matches everything', {}, labels, true],
    ['empty selector matches no labels', {}, undefined, true],
    ['matchLabels all present', { matchLabels: { env: 'prod', region: 'eu' } }, labels, true],
    ['matchLabels one differs', { matchLabels: { env: 'prod', region: 'us' } }, labels, false],
    ['matchLabels missing key', { matchLabels: { zone: 'a' } }, labels, false],
    ['In hit', { matchExpressions: [{ key: 'region', operator: 'In', values: ['us', 'eu'] }] }, labels, true],
    ['In miss', { matchExpressions: [{ key: 'region', operator: 'In', values: ['us'] }] }, labels, false],
    ['In on missing label', { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }, labels, false],
    ['NotIn hit', { matchExpressions: [{ key: 'region', operator: 'NotIn', values: ['eu'] }] }, labels, false],
    ['NotIn miss', { matchExpressions: [{ key: 'region', operator: 'NotIn', values: ['us'] }] }, labels, true],
    ['NotIn on missing label matches', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, labels, true],
    ['Exists', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels, true],
    ['Exists missing', { matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, labels, false],
    ['DoesNotExist', { matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, labels, true],
    ['DoesNotExist present', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels, false],
    [
      'all requirements are ANDed',
      {
        matchLabels: { env: 'prod' },
        matchExpressions: [
          { key: 'tier', operator: 'Exists' },
          { key: 'region', operator: 'In', values: ['us'] },
        ],
      },
      labels,
      false,
    ],
    ['a label named like an Object prototype key is not present', { matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, labels, false],
  ])('%s', (_name, sel, l, want) => {
    expect(matchesSelector(l, sel)).toBe(want);
  });
});

describe('validateSelector', () => {
  it.each<[string, LabelSelector]>([
    ['In without values', { matchExpressions: [{ key: 'a', operator: 'In' }] }],
    ['NotIn with empty values', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: [] }] }],
    ['Exists with values', { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] }],
    ['unknown operator', { matchExpressions: [{ key: 'a', operator: 'Gt' as 'In', values: ['1'] }] }],
  ])('rejects %s as a TerminalError', (_name, sel) => {
    expect(() => validateSelector(sel)).toThrow(TerminalError);
  });

  it('accepts a valid selector', () => {
    expect(() => validateSelector({ matchLabels: { a: 'b' }, matchExpressions: [{ key: 'c', operator: 'DoesNotExist' }] })).not.toThrow();
  });
});

describe('selectorString', () => {
  it('renders the API string form', () => {
    expect(
      selectorString({
        matchLabels: { env: 'prod' },
        matchExpressions: [
          { key: 'region', operator: 'In', values: ['us', 'eu'] },
          { key: 'tier', operator: 'NotIn', values: ['free'] },
          { key: 'fleet', operator: 'Exists' },
          { key: 'retired', operator: 'DoesNotExist' },
        ],
      }),
    ).toBe('env=prod,region in (eu,us),tier notin (free),fleet,!retired');
    expect(selectorString({})).toBe('');
  });
});
