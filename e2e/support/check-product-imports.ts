/**
 * Checks that the product build output imports no test support, by the import graph of the compiled
 * JavaScript rather than by file names: a fake imported by the operator would ship in its image
 * whatever the file is called. `npm test` runs it right after `npm run build`:
 *
 *   node --import ./operator/src/cli/ts-resolve-hook.ts e2e/support/check-product-imports.ts [dist]
 *
 * From every product module under the output directory it follows the literal specifiers of static
 * imports, `export … from` and dynamic `import()`, and fails (exit code 1, one line per problem with the
 * chain of imports that leads there) when a relative specifier does not resolve to a file, or resolves to
 * what is not product output: test support (under one of {@link TEST_SUPPORT_DIRS}, or a `*.test.js`) or
 * a file outside the output directory. Test support that sits in the output without being imported fails
 * too (the build must not emit it), and so does an output without product modules (nothing was built).
 * Specifiers of the package's own `imports` map (`#core/clock.js`) are resolved as Node resolves them at
 * run time (the nearest package.json, no `--conditions`) and checked like relative ones. Other packages'
 * specifiers (`yaml`, `node:fs`) are not followed, nor computed ones (`import(url)`), which cannot be
 * resolved without running the code.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

/** Top-level directories of the output that hold test support (mirroring the repository's). */
export const TEST_SUPPORT_DIRS: readonly string[] = ['testkit', 'e2e'];

/** Module files of the output: what Node can load as JavaScript. */
const MODULE_FILE = /\.(?:m|c)?js$/;
/** Test files, whatever directory they are in. */
const TEST_FILE = /\.test\.(?:m|c)?js$/;

/** Every module file under `dir`, recursively, as absolute paths in a stable order. */
function moduleFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...moduleFiles(path));
    else if (entry.isFile() && MODULE_FILE.test(entry.name)) out.push(path);
  }
  return out;
}

/** Whether `file` (absolute) is strictly inside the directory `dir`. */
function isInside(dir: string, file: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/**
 * Whether `file` (absolute) is product output of the build rooted at `outDir`: inside it, not under a
 * test-support directory, not a test file.
 */
export function isProductFile(outDir: string, file: string): boolean {
  if (!isInside(outDir, file)) return false;
  const rel = relative(outDir, file);
  const top = rel.split(sep)[0]!;
  return !TEST_SUPPORT_DIRS.includes(top) && !TEST_FILE.test(rel);
}

/**
 * The module specifiers a JavaScript module names literally: `import … from 's'`, `import 's'`,
 * `export … from 's'` and `import('s')`. Parsed with the TypeScript compiler's parser, so specifiers in
 * comments, strings, template literals and regular expressions are not taken for imports.
 */
export function importSpecifiers(fileName: string, source: string): string[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg && (ts.isStringLiteral(arg) || ts.isNoSubstitutionTemplateLiteral(arg))) out.push(arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The conditions Node matches in an `imports` target when started without `--conditions`. */
const RUNTIME_CONDITIONS = new Set(['node', 'import', 'default']);

/** The package.json that scopes `file` (the nearest one above it), or undefined. */
function packageScope(file: string): string | undefined {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const candidate = join(dir, 'package.json');
    if (isFile(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/** A target of an `imports` entry with the pattern's `*` replaced, under the runtime conditions (first match in key order). */
function importTarget(target: unknown, star: string): string | undefined {
  if (typeof target === 'string') return target.replaceAll('*', star);
  if (Array.isArray(target)) {
    for (const t of target) {
      const r = importTarget(t, star);
      if (r !== undefined) return r;
    }
    return undefined;
  }
  if (typeof target === 'object' && target !== null) {
    for (const [condition, t] of Object.entries(target)) if (RUNTIME_CONDITIONS.has(condition)) return importTarget(t, star);
  }
  return undefined;
}

/**
 * The file a `#` specifier names through the `imports` field of the importer's package.json (exact keys
 * first, then the `*` pattern with the longest prefix, as Node does), or undefined when nothing maps it.
 */
function packageImport(specifier: string, importer: string): string | undefined {
  const pkgFile = packageScope(importer);
  if (pkgFile === undefined) return undefined;
  const imports = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { imports?: Record<string, unknown> }).imports ?? {};
  let target: string | undefined;
  if (Object.hasOwn(imports, specifier)) {
    target = importTarget(imports[specifier], '');
  } else {
    const patterns = Object.keys(imports)
      .filter((k) => k.includes('*'))
      .map((k) => ({ k, prefix: k.slice(0, k.indexOf('*')), suffix: k.slice(k.indexOf('*') + 1) }))
      .filter(({ prefix, suffix }) => specifier.startsWith(prefix) && specifier.endsWith(suffix) && specifier.length >= prefix.length + suffix.length)
      .sort((a, b) => b.prefix.length - a.prefix.length);
    const best = patterns[0];
    if (best) target = importTarget(imports[best.k], specifier.slice(best.prefix.length, specifier.length - best.suffix.length));
  }
  return target === undefined ? undefined : resolve(dirname(pkgFile), target);
}

/**
 * The file a specifier names when it is a path (relative, absolute or file: URL) or one of the package's
 * own `#` imports (`null` when no `imports` entry maps it); undefined for other packages.
 */
function pathOf(specifier: string, importer: string): string | null | undefined {
  if (specifier.startsWith('./') || specifier.startsWith('../')) return resolve(dirname(importer), specifier);
  if (specifier.startsWith('/')) return specifier;
  if (specifier.startsWith('file:')) return fileURLToPath(specifier);
  if (specifier.startsWith('#')) return packageImport(specifier, importer) ?? null;
  return undefined;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The problems of the build output under `outDir` (absolute or relative to the working directory), one
 * message per problem, empty when the product imports no test support and every relative import
 * resolves. Paths in the messages are relative to `outDir`.
 */
export function checkProductImports(outDir: string): string[] {
  const root = resolve(outDir);
  if (!existsSync(root)) return [`${outDir}: no such directory (run npm run build first)`];
  const show = (file: string): string => relative(root, file).split(sep).join('/');
  const files = moduleFiles(root);
  const product = files.filter((f) => isProductFile(root, f));
  if (product.length === 0) return [`${outDir}: no product modules to check (run npm run build first)`];
  const edges = new Map<string, Array<{ specifier: string; target: string | null }>>();
  for (const file of product) {
    const out: Array<{ specifier: string; target: string | null }> = [];
    for (const specifier of importSpecifiers(file, readFileSync(file, 'utf8'))) {
      const target = pathOf(specifier, file);
      if (target !== undefined) out.push({ specifier, target });
    }
    edges.set(file, out);
  }
  // Breadth first from the entry points (product modules no product module imports), then from whatever
  // only a cycle reaches; `from` keeps how each module was first reached, for the chain in a message.
  const importedByProduct = new Set([...edges.values()].flatMap((es) => es.map((e) => e.target)));
  const entries = product.filter((f) => !importedByProduct.has(f));
  const from = new Map<string, string | undefined>();
  const chain = (file: string): string => {
    const out: string[] = [];
    for (let f: string | undefined = file; f !== undefined; f = from.get(f)) out.unshift(show(f));
    return out.join(' -> ');
  };
  const problems: string[] = [];
  const reachedSupport = new Set<string>();
  for (const start of [...entries, ...product]) {
    if (from.has(start)) continue;
    from.set(start, undefined);
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const importer = queue[i]!;
      for (const { specifier, target } of edges.get(importer) ?? []) {
        if (target === null) {
          problems.push(`${chain(importer)}: '${specifier}' is in no \`imports\` entry of the package.json`);
        } else if (!isFile(target)) {
          problems.push(`${chain(importer)}: '${specifier}' does not resolve to a file`);
        } else if (!isProductFile(root, target)) {
          reachedSupport.add(target);
          const what = isInside(root, target) ? 'test support' : 'a file outside the build output';
          problems.push(`${chain(importer)} -> ${show(target)}: product code imports ${what} ('${specifier}')`);
        } else if (!from.has(target)) {
          from.set(target, importer);
          queue.push(target);
        }
      }
    }
  }
  for (const file of files) {
    if (!isProductFile(root, file) && !reachedSupport.has(file)) {
      problems.push(`${show(file)}: test support in the build output (a build tsconfig includes it)`);
    }
  }
  return problems;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const outDir = process.argv[2] ?? 'dist';
  const problems = checkProductImports(outDir);
  for (const p of problems) process.stderr.write(`${p}\n`);
  if (problems.length > 0) {
    process.stderr.write(`${problems.length} problem(s): the product output under ${outDir}/ must not import test support (testkit/, e2e/, *.test.js)\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`${outDir}/: product modules import no test support\n`);
  }
}
