// Entry point of `npm run cluster`: Node runs it with type stripping and the repository's resolve hook
// preloaded (`--import ./operator/src/cli/ts-resolve-hook.ts`), which maps the `.js` specifiers of our
// TypeScript imports to the `.ts` files on disk.
import { main } from './cli-main.js';

await main(process.argv);
