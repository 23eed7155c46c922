// Entry point of `npm run bench:gates` (see gates-main.ts). Node runs it with type stripping and the
// repository's resolve hook preloaded (`--import ./e2e/support/register-ts.ts`), which maps the `.js`
// specifiers of our TypeScript imports to the `.ts` files on disk, as the other benchmarks do.
import { main } from './gates-main.js';

process.exitCode = await main();
