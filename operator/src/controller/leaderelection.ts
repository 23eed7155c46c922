/**
 * The operator's leader election: the shared core's elector (lib/core/leaderelection.ts, which holds
 * the whole acquire/renew/lose/release state machine and its rationale) over the Lease storage of
 * leaseclient.ts, client-node's `CoordinationV1Api`. Re-exported here so the operator's callers keep
 * one import for election.
 */
export { LeaderElector, defaultIdentity, isLeaseConflict } from '#core/leaderelection.js';
export type { LeaderCallbacks, LeaderElectorOptions, LeaseRecord, LeaseStore } from '#core/leaderelection.js';
export { KubeLeaseClient, fromV1Lease, toV1Lease } from './leaseclient.js';
export type { LeaseApi, LeaseClient } from './leaseclient.js';
