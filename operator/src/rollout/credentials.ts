/**
 * A target whose API server refuses the kubeconfig (an expired or rotated token, a token stripped of
 * its rights, a certificate that fails verification) is not an outage: break-glass must not fire, and
 * its gates must not count as NoData towards the fleet-wide breaker. The cluster holds where it is, a
 * CredentialsInvalid condition names it and its Secret (never the Secret's content), and it goes on by
 * itself once a call is accepted again. /readyz answers even a token with no rights, so credentials are
 * also judged on a resource call: the cheap DaemonSet LIST the reconciler makes anyway, run when a gate
 * evaluation is due and while the credentials are marked bad; it alone judges a 403 (a write can get one
 * from a quota or an admission webhook too), while any call's 401 or TLS failure marks the cluster.
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { isCredentialError } from '../util/errors.js';
import { REASON } from './conditions.js';
import { resumeAfterHold } from './hold.js';
import type { ClusterClient } from './interfaces.js';
import { iso, type Pass } from './pass.js';

export { isCredentialError };

/** The CredentialsInvalid event for a cluster: recorded once, when the refusal starts. */
export function markCredentialsInvalid(p: Pass, c: ClusterStatus, why: string): void {
  const target = p.target(c.name);
  const secret = target ? `Secret ${p.rollout.metadata?.namespace ?? ''}/${target.secretName} (key ${target.secretKey})` : 'its kubeconfig Secret';
  c.message = `the API server refuses the credentials of ${secret}: ${why}; holding until they are accepted`;
  if (c.credentialsInvalidSince) return;
  c.credentialsInvalidSince = iso(p.now);
  p.rolloutEvent('CredentialsInvalid');
  p.record('Warning', REASON.CredentialsInvalid, c.message, c.name);
}

/** The CredentialsAccepted event: a call went through again. */
export function markCredentialsAccepted(p: Pass, c: ClusterStatus): void {
  if (!c.credentialsInvalidSince) return;
  resumeAfterHold(p, c, c.credentialsInvalidSince);
  delete c.credentialsInvalidSince;
  p.rolloutEvent('CredentialsAccepted');
  p.record('Normal', REASON.CredentialsAccepted, 'the API server accepts the credentials again', c.name);
}

/**
 * The access check on a resource call: returns false when the credentials are refused (the cluster is
 * marked), true otherwise (a transient error says nothing about them, and is left to the step).
 */
export async function checkAccess(p: Pass, c: ClusterStatus, client: ClusterClient): Promise<boolean> {
  try {
    await client.listCollectorDaemonSets(p.rollout.spec.collector.namespace, p.rolloutLabel);
  } catch (err) {
    if (isCredentialError(err)) {
      markCredentialsInvalid(p, c, `listing DaemonSets was refused (${describe(err)})`);
      return false;
    }
    return true;
  }
  markCredentialsAccepted(p, c);
  return true;
}

function describe(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? `HTTP ${code}` : typeof code === 'string' ? code : 'refused';
}
