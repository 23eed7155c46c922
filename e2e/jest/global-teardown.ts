// Jest global teardown of the e2e project: stops the run's fleet and checks that none of its processes
// is left and its work dir is gone. A fleet the run only reused is left running.
// Loaded by Node's own loader like global-setup.ts (which registered the `.js` → `.ts` resolve hook in
// this same process), so the harness is imported dynamically.
import { existsSync } from 'node:fs';
import type { Fleet } from '../controlplane/fleet.js';
import type { E2EGlobals } from './global-setup.js';

/** Stops the fleet; throws (failing the run) when a process or the work dir survives. */
export default async function globalTeardown(): Promise<void> {
  const { attachFleet } = await import('../controlplane/fleet.js');
  const { isAlive } = await import('../controlplane/processes.js');
  const { FLEET_INFO_ENV } = await import('../controlplane/testing.js');
  const g = globalThis as E2EGlobals;
  if (g.__TRO_E2E_FLEET_REUSED__) return;
  const info = process.env[FLEET_INFO_ENV];
  const fleet: Fleet | undefined = g.__TRO_E2E_FLEET__ ?? (info && existsSync(info) ? attachFleet(info) : undefined);
  if (!fleet) return;
  // Read the pids last written (tests may have restarted processes) before the info file goes away.
  const procs = fleet.processes();
  const t = Date.now();
  await fleet.stop();
  const left = procs.filter((p) => isAlive(p.pid));
  if (left.length > 0) throw new Error(`e2e teardown: processes left: ${left.map((p) => `${p.id} (pid ${p.pid})`).join(', ')}`);
  if (existsSync(fleet.workDir)) throw new Error(`e2e teardown: work dir ${fleet.workDir} left behind`);
  process.stderr.write(`[e2e] fleet stopped in ${((Date.now() - t) / 1000).toFixed(1)} s: ${procs.length} processes gone, work dir removed\n`);
}
