/**
 * The process entry of `kubectl-tro` (run by operator/bin/kubectl-tro). From source it runs under Node's
 * type stripping with ./ts-resolve-hook.ts preloaded (`--import`), which lets the `./x.js` imports find
 * the `./x.ts` files; compiled to JavaScript (`npm run build`, `node dist/operator/src/cli/bin.js`) it
 * needs no hook.
 */
import { main } from './main.js';

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Exit explicitly once the output is flushed: a request aborted by --request-timeout can leave a
// half-open socket in the HTTP client's pool that would keep Node alive until its own connect
// timeout (10 s more) although the command is done.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
