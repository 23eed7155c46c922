// Preloaded with `node --experimental-strip-types --import ./e2e/support/register-ts.ts FILE.ts` so that
// a TypeScript entry point can import our sources, whose `./x.js` specifiers name `./x.ts` files on
// disk (see operator/src/cli/ts-resolve-hook.ts). Loaded by URL: a relative `.js` import would itself
// need the hook.
import { registerHooks } from 'node:module';

const hook = (await import(new URL('../../operator/src/cli/ts-resolve-hook.ts', import.meta.url).href)) as typeof import('../../operator/src/cli/ts-resolve-hook.js');
registerHooks({ resolve: hook.resolveTsFallback });
