// Entry point of `npm run cluster` (Node with --experimental-strip-types). Node does not map the `.js`
// import suffixes our TypeScript uses (NodeNext style, needed by tsc and jest) to the `.ts` files on disk,
// so this file registers a tiny resolve hook first and only then loads the real CLI. It must have no
// static relative imports itself: those would be resolved before the hook exists.
import { registerHooks } from 'node:module';

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (err) {
      const local = (specifier.startsWith('./') || specifier.startsWith('../')) && specifier.endsWith('.js');
      if (!local || (err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
      return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
    }
  },
});

const { main } = await import('./cli-main.js');
await main(process.argv);
