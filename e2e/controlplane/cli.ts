// Entry point of `npm run cluster` (Node with --experimental-strip-types). Node does not map the `.js`
// import suffixes our TypeScript uses (NodeNext style, needed by tsc and jest) to the `.ts` files on disk,
// so this file registers a tiny resolve hook first and only then loads the real CLI. It must have no
// static relative imports itself: those would be resolved before the hook exists.
// The shared hook (see e2e/support/register-ts.ts), loaded by URL before any relative import.
await import(new URL('../support/register-ts.ts', import.meta.url).href);

const { main } = await import('./cli-main.js');
await main(process.argv);
