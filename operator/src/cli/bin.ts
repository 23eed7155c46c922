/**
 * The process entry of `kubectl-tro` (run by operator/bin/kubectl-tro). Run from source with Node's
 * type stripping, it first registers {@link resolveTsFallback} so the sources' `./x.js` imports find
 * the `./x.ts` files; compiled to JavaScript (`npm run build`, `node dist/operator/src/cli/bin.js`) the
 * hook is not needed and not loaded. It has no static relative imports on purpose: those would be
 * resolved before the hook exists.
 */
import { registerHooks } from 'node:module';

if (import.meta.url.endsWith('.ts')) {
  // Loaded by URL: `./ts-resolve-hook.js` would itself need the hook to be found.
  const hook = (await import(new URL('./ts-resolve-hook.ts', import.meta.url).href)) as typeof import('./ts-resolve-hook.js');
  registerHooks({ resolve: hook.resolveTsFallback });
}
const { main } = await import('./main.js');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Exit explicitly once the output is flushed: a request aborted by --request-timeout can leave a
// half-open socket in the HTTP client's pool that would keep Node alive until its own connect
// timeout (10 s more) although the command is done.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
