// Shared e2e steps for the TelemetryRollout API on the real management cluster.
import { crdPath } from '../../operator/src/api/crd.js';
import { kubectl, managementCluster } from '../controlplane/testing.js';

/** Installs the CRD from crds/ into the management cluster (idempotent) and waits until it is served. */
export async function installCrd(): Promise<void> {
  const mgmt = managementCluster();
  await kubectl(mgmt, ['apply', '--server-side', '--force-conflicts', '-f', crdPath()]);
  await kubectl(mgmt, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/telemetryrollouts.telemetry.rollout.dev']);
}
