import { describe, expect, it, jest } from '@jest/globals';
import type { ResolveHookContext } from 'node:module';
import type { NextResolve } from './ts-resolve-hook.js';

// Importing the module registers its hook with Node; jest's runtime refuses module hooks, and the
// registration is what the first case checks, so `registerHooks` is a recording fake here.
const registerHooks = jest.fn();
jest.unstable_mockModule('node:module', () => ({ registerHooks }));
const { resolveTsFallback } = await import('./ts-resolve-hook.js');

const notFound = (specifier: string) => Object.assign(new Error(`Cannot find module '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });
const ctx = (parentURL: string | undefined): ResolveHookContext => ({ conditions: ['node', 'import'], importAttributes: {}, parentURL });

/** A resolver that knows a set of files under file:///src/ (relative to the parent's directory). */
function resolverOf(files: string[]): NextResolve & { calls: string[] } {
  const calls: string[] = [];
  const fn = ((specifier: string, context?: Partial<ResolveHookContext>) => {
    calls.push(specifier);
    const url = new URL(specifier, context?.parentURL ?? 'file:///src/').href;
    if (files.includes(url)) return { url, format: 'module' };
    throw notFound(specifier);
  }) as NextResolve & { calls: string[] };
  fn.calls = calls;
  return fn;
}

describe('importing ts-resolve-hook', () => {
  it('registers resolveTsFallback as a resolve hook, once', () => {
    expect(registerHooks.mock.calls).toEqual([[{ resolve: resolveTsFallback }]]);
  });
});

describe('resolveTsFallback', () => {
  it('maps a missing ./x.js imported from a .ts file to ./x.ts', () => {
    const next = resolverOf(['file:///src/cli/x.ts']);
    expect(resolveTsFallback('./x.js', ctx('file:///src/cli/main.ts'), next).url).toBe('file:///src/cli/x.ts');
    expect(next.calls).toEqual(['./x.js', './x.ts']);
  });

  it('leaves an existing .js file alone', () => {
    const next = resolverOf(['file:///src/cli/x.js', 'file:///src/cli/x.ts']);
    expect(resolveTsFallback('./x.js', ctx('file:///src/cli/main.ts'), next).url).toBe('file:///src/cli/x.js');
    expect(next.calls).toEqual(['./x.js']);
  });

  it.each([
    ['a package', 'yaml', 'file:///src/cli/main.ts'],
    ['an import from compiled JavaScript', './x.js', 'file:///dist/cli/main.js'],
    ['a non-.js specifier', './x.json', 'file:///src/cli/main.ts'],
  ])('does not touch %s', (_t, specifier, parent) => {
    const next = resolverOf(['file:///src/cli/x.ts', 'file:///dist/cli/x.ts']);
    expect(() => resolveTsFallback(specifier, ctx(parent), next)).toThrow(`Cannot find module '${specifier}'`);
    expect(next.calls).toEqual([specifier]);
  });

  it('rethrows the original error when the .ts file is missing too, and other errors as they are', () => {
    expect(() => resolveTsFallback('../gone.js', ctx('file:///src/cli/main.ts'), resolverOf([]))).toThrow("Cannot find module '../gone.js'");
    const broken: NextResolve = () => {
      throw Object.assign(new Error('bad specifier'), { code: 'ERR_INVALID_MODULE_SPECIFIER' });
    };
    expect(() => resolveTsFallback('./x.js', ctx('file:///src/cli/main.ts'), broken)).toThrow('bad specifier');
  });

  it("resolves the package's #imports from a .ts file under the `source` condition, and only from one", () => {
    const seen: string[][] = [];
    const next: NextResolve = (specifier, context) => {
      seen.push([...(context?.conditions ?? [])]);
      return { url: `file:///${specifier.slice(1)}`, format: 'module' };
    };
    expect(resolveTsFallback('#core/clock.js', ctx('file:///src/cli/main.ts'), next).url).toBe('file:///core/clock.js');
    resolveTsFallback('#core/clock.js', ctx('file:///dist/cli/main.js'), next);
    expect(seen).toEqual([
      ['node', 'import', 'source'],
      ['node', 'import'],
    ]);
  });
});
