import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { checkProductImports, importSpecifiers, isProductFile } from './check-product-imports.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A build output directory holding `files` (path relative to it, `../` for beside it -> content). */
function outputOf(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tro-imports-'));
  dirs.push(root);
  const dist = join(root, 'dist');
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dist, rel)), { recursive: true });
    writeFileSync(join(dist, rel), content);
  }
  return dist;
}

const GOOD = {
  'operator/src/main.js': [
    "import { a } from './a.js';",
    "import './side.js';",
    "export * from '../../collector/src/estimate.js';",
    "export * as ns from './ns.js';",
    "import yaml from 'yaml';",
    "import { readFileSync } from 'node:fs';",
    "const lazy = await import('./lazy.js');",
    "const computed = await import(new URL('./hook.ts', import.meta.url).href);",
    '// import { fake } from "../../testkit/operator/fakes.js";',
    'const text = "import(\'../../e2e/support/api.js\')";',
    "const pattern = /import('.\\/missing.js')/;",
    'export { a, lazy, computed, text, pattern, yaml, readFileSync };',
  ].join('\n'),
  'operator/src/a.js': "export { b as a } from './b.js';",
  'operator/src/b.js': 'export const b = 1;',
  'operator/src/side.js': '',
  'operator/src/ns.js': 'export const n = 1;',
  'operator/src/lazy.js': "export default await import('./b.js');",
  'collector/src/estimate.js': 'export const e = 1;',
  'collector/main.js': "import { e } from './src/estimate.js'; export { e };",
};

describe('checkProductImports', () => {
  it('passes a product graph whose imports resolve inside the product, ignoring packages, computed specifiers, comments and strings', () => {
    expect(checkProductImports(outputOf(GOOD))).toEqual([]);
  });

  it('names the chain from a product module to the testkit module it reaches through a static import', () => {
    const dist = outputOf({
      ...GOOD,
      'operator/src/b.js': "import { FakeCluster } from '../../testkit/operator/rollout/fakes.js'; export const b = FakeCluster;",
      'testkit/operator/rollout/fakes.js': 'export class FakeCluster {}',
    });
    const problems = checkProductImports(dist);
    expect(problems).toEqual([
      "operator/src/main.js -> operator/src/a.js -> operator/src/b.js -> testkit/operator/rollout/fakes.js: product code imports test support ('../../testkit/operator/rollout/fakes.js')",
    ]);
  });

  it('follows dynamic imports and export-from into e2e code and test files', () => {
    const problems = checkProductImports(
      outputOf({
        ...GOOD,
        'operator/src/lazy.js': "export default await import('../../e2e/support/api.js');",
        'operator/src/ns.js': "export * from './ns.test.js';",
        'operator/src/ns.test.js': 'export const n = 1;',
        'e2e/support/api.js': 'export const api = 1;',
      }),
    );
    expect(problems).toEqual([
      "operator/src/main.js -> operator/src/ns.js -> operator/src/ns.test.js: product code imports test support ('./ns.test.js')",
      "operator/src/main.js -> operator/src/lazy.js -> e2e/support/api.js: product code imports test support ('../../e2e/support/api.js')",
    ]);
  });

  it('fails a relative import that does not resolve to a file', () => {
    const problems = checkProductImports(outputOf({ ...GOOD, 'operator/src/side.js': "import './missing.js'; import './';" }));
    expect(problems).toEqual([
      "operator/src/main.js -> operator/src/side.js: './missing.js' does not resolve to a file",
      "operator/src/main.js -> operator/src/side.js: './' does not resolve to a file",
    ]);
  });

  it('fails an import that leaves the output directory for the sources', () => {
    const problems = checkProductImports(
      outputOf({
        ...GOOD,
        'operator/src/side.js': "import '../../../operator/src/util/clock.js';",
        '../operator/src/util/clock.js': 'export const c = 1;',
      }),
    );
    expect(problems).toEqual([
      "operator/src/main.js -> operator/src/side.js -> ../operator/src/util/clock.js: product code imports a file outside the build output ('../../../operator/src/util/clock.js')",
    ]);
  });

  it('fails test support emitted into the output even when no product module imports it', () => {
    const problems = checkProductImports(outputOf({ ...GOOD, 'testkit/core/fakeclock.js': 'export class FakeClock {}', 'operator/src/a.test.js': '' }));
    expect(problems).toEqual([
      'operator/src/a.test.js: test support in the build output (a build tsconfig includes it)',
      'testkit/core/fakeclock.js: test support in the build output (a build tsconfig includes it)',
    ]);
  });
  it("resolves the package's own #imports as Node does at run time (default condition, not types/source) and checks their targets", () => {
    const pkg = JSON.stringify({
      imports: {
        '#core/*.js': { types: './lib/core/*.ts', source: './lib/core/*.ts', default: './dist/lib/core/*.js' },
        '#core/special.js': './dist/lib/core/clock.js',
        '#kit/*.js': { node: './dist/testkit/*.js' },
        '#src/*.js': { source: './dist/lib/core/*.js', default: './operator/src/*.js' },
      },
    });
    const good = outputOf({
      ...GOOD,
      '../package.json': pkg,
      'operator/src/side.js': "import '#core/clock.js'; import '#core/special.js';",
      'lib/core/clock.js': '',
    });
    expect(checkProductImports(good)).toEqual([]);
    const bad = outputOf({
      ...GOOD,
      '../package.json': pkg,
      '../operator/src/util.js': '',
      'operator/src/side.js': "import '#kit/fakes.js'; import '#src/util.js'; import '#nope/x.js'; import '#core/missing.js';",
      'testkit/fakes.js': '',
    });
    expect(checkProductImports(bad)).toEqual([
      "operator/src/main.js -> operator/src/side.js -> testkit/fakes.js: product code imports test support ('#kit/fakes.js')",
      "operator/src/main.js -> operator/src/side.js -> ../operator/src/util.js: product code imports a file outside the build output ('#src/util.js')",
      "operator/src/main.js -> operator/src/side.js: '#nope/x.js' is in no `imports` entry of the package.json",
      "operator/src/main.js -> operator/src/side.js: '#core/missing.js' does not resolve to a file",
    ]);
  });

  it('fails an output directory that is missing or holds no product module, so an empty build cannot pass', () => {
    const dist = outputOf({ 'testkit/operator/api/fixtures.js': '' });
    expect(checkProductImports(dist)).toEqual([`${dist}: no product modules to check (run npm run build first)`]);
    expect(checkProductImports(join(dist, 'nothing'))).toEqual([`${join(dist, 'nothing')}: no such directory (run npm run build first)`]);
  });
});

describe('isProductFile', () => {
  it('is the output minus testkit/, e2e/, test files and anything outside it', () => {
    const dist = join(tmpdir(), 'x', 'dist');
    expect(isProductFile(dist, join(dist, 'operator/src/main.js'))).toBe(true);
    expect(isProductFile(dist, join(dist, 'collector/main.js'))).toBe(true);
    expect(isProductFile(dist, join(dist, 'operator/src/testkit/notes.js'))).toBe(true);
    expect(isProductFile(dist, join(dist, 'testkit/operator/api/fixtures.js'))).toBe(false);
    expect(isProductFile(dist, join(dist, 'e2e/demo/main.js'))).toBe(false);
    expect(isProductFile(dist, join(dist, 'operator/src/cli/program.test.js'))).toBe(false);
    expect(isProductFile(dist, join(dist, '..', 'operator/src/main.js'))).toBe(false);
    expect(isProductFile(dist, dist)).toBe(false);
  });
});

describe('importSpecifiers', () => {
  it('reads static, side-effect, export-from and literal dynamic imports, and nothing in comments, strings or regular expressions', () => {
    const src = [
      "import x, { y } from './a.js';",
      "import './b.js';",
      "export * from './c.js';",
      "export * as ns from './d.js';",
      'export { q } from "./e.js";',
      'const f = await import(`./f.js`);',
      "/* import './no1.js' */ const s = \"import('./no2.js')\"; const r = /import('.\\/no3.js')/;",
      "const g = await import(new URL('./no4.ts', import.meta.url).href);",
    ].join('\n');
    expect(importSpecifiers('m.js', src)).toEqual(['./a.js', './b.js', './c.js', './d.js', './e.js', './f.js']);
  });
});
