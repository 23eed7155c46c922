// Jest global setup of the e2e project: starts ONE fleet for the whole run (layout: default-fleet.ts,
// override with TRO_E2E_FLEET) and publishes its info file in TRO_E2E_FLEET_INFO, which the test
// workers inherit. When TRO_E2E_FLEET_INFO already names a running fleet (e.g. one started with
// `npm run cluster -- up`), that fleet is reused and left running at the end.
//
// Jest loads this file with Node's own loader (type stripping), not through ts-jest, so the `.js`
// suffixes of our relative imports do not map to `.ts` files here: a resolve hook is registered first and
// the harness is imported dynamically. Type-only imports are erased and may stay static.
import { existsSync } from 'node:fs';
import type { Fleet } from '../controlplane/fleet.js';

// The repository's resolve hook (operator/src/cli/ts-resolve-hook.ts, which npm scripts preload with
// --import), loaded by URL before any relative import.
await import(new URL('../../operator/src/cli/ts-resolve-hook.ts', import.meta.url).href);

/** Where the setup leaves the fleet for the teardown (same process; jest documents this pattern). */
export interface E2EGlobals {
  __TRO_E2E_FLEET__?: Fleet;
  __TRO_E2E_FLEET_REUSED__?: boolean;
}

/** Starts (or reuses) the run's fleet; see the file comment. */
export default async function globalSetup(): Promise<void> {
  const { DEFAULT_E2E_EXTRA_USERS, e2eFleetSpec } = await import('../controlplane/default-fleet.js');
  const { attachFleet, startFleet } = await import('../controlplane/fleet.js');
  const { FLEET_INFO_ENV } = await import('../controlplane/testing.js');
  const g = globalThis as E2EGlobals;
  const existing = process.env[FLEET_INFO_ENV];
  if (existing && existsSync(existing)) {
    g.__TRO_E2E_FLEET__ = attachFleet(existing);
    g.__TRO_E2E_FLEET_REUSED__ = true;
    process.stderr.write(`\n[e2e] reusing the fleet of ${existing}\n`);
    return;
  }
  process.stderr.write('\n');
  const fleet = await startFleet({ clusters: e2eFleetSpec(), extraUsers: DEFAULT_E2E_EXTRA_USERS.map((u) => ({ ...u })) });
  g.__TRO_E2E_FLEET__ = fleet;
  g.__TRO_E2E_FLEET_REUSED__ = false;
  process.env[FLEET_INFO_ENV] = fleet.infoFile;
}
