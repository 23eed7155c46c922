// Entry point of `npm run bench:gates` (see gates-main.ts). Node runs it with type stripping and the
// repository's resolve hook preloaded (`--import ./operator/src/cli/ts-resolve-hook.ts`), which maps
// the `.js` specifiers of our TypeScript imports to the `.ts` files on disk, as for every npm script.
import { main } from './gates-main.js';

process.exitCode = await main();
