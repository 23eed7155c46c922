/**
 * The one way this repository runs TypeScript without compiling it: Node's type stripping (the code is
 * written with `erasableSyntaxOnly`) plus this module, preloaded:
 *
 *   node --import ./operator/src/cli/ts-resolve-hook.ts FILE.ts
 *
 * Every npm script that runs a `.ts` file does this, and so does operator/bin/kubectl-tro (which is why
 * the module lives with the CLI, its one user in the product). A process started by someone else
 * (jest's global setup) imports it by URL before anything relative instead. Importing the module
 * registers the hook (`module.registerHooks`: synchronous, for this thread's `import` and `require`);
 * Node's module cache makes that once however often it is imported.
 *
 * Why a hook ({@link resolveTsFallback}) at all: the sources import siblings as `./x.js` (NodeNext
 * style, which tsc and jest need), but on disk there is only `./x.ts`, and Node does not map one to the
 * other. The hook retries such a specifier with `.ts` when, and only when, the plain resolution failed
 * with ERR_MODULE_NOT_FOUND, the specifier is relative, and the importer is itself a `.ts` file;
 * anything else (packages, a genuinely missing file, compiled `.js` code) resolves exactly as without
 * the hook.
 *
 * The package's own `#name/...` imports (package.json "imports": the shared core `#core/*`) point at
 * compiled JavaScript under dist/ by default and at the TypeScript sources under the `source`
 * condition; a `.ts` importer gets the sources, so running from source never depends on a build.
 *
 * This module must not import anything relative itself: it is loaded before the hook exists.
 */
import type { ResolveFnOutput, ResolveHookContext } from 'node:module';
import { registerHooks } from 'node:module';

/** The `nextResolve` a synchronous resolve hook receives. */
export type NextResolve = (specifier: string, context?: Partial<ResolveHookContext>) => ResolveFnOutput;

function isModuleNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND';
}

/**
 * The resolve hook (see the file comment). When the `.ts` sibling does not exist either, the original
 * error is rethrown, so the message names the specifier the code actually wrote.
 */
export function resolveTsFallback(specifier: string, context: ResolveHookContext, nextResolve: NextResolve): ResolveFnOutput {
  if (specifier.startsWith('#') && (context.parentURL?.endsWith('.ts') ?? false)) {
    return nextResolve(specifier, { ...context, conditions: [...context.conditions, 'source'] });
  }
  try {
    return nextResolve(specifier, context);
  } catch (err) {
    const relative = specifier.startsWith('./') || specifier.startsWith('../');
    const fromTs = context.parentURL?.endsWith('.ts') ?? false;
    if (!relative || !fromTs || !specifier.endsWith('.js') || !isModuleNotFound(err)) throw err;
    try {
      return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
    } catch (tsErr) {
      if (isModuleNotFound(tsErr)) throw err;
      throw tsErr;
    }
  }
}

registerHooks({ resolve: resolveTsFallback });
