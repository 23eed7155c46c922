import { describe, expect, it } from '@jest/globals';
import { apiError } from '../../../testkit/operator/controller/fakes.js';
import { ControllerMetrics } from './metrics.js';

describe('ControllerMetrics', () => {
  it('records reconciles, errors and durations', async () => {
    const m = new ControllerMetrics();
    m.observeReconcile('success', 0.02);
    m.observeReconcile('requeue', 0.5);
    m.observeReconcile('error', 1.5);
    m.observeReconcile('terminal', 0.001);
    const text = await m.metrics();
    expect(text).toContain('tro_reconcile_total{result="success"} 1');
    expect(text).toContain('tro_reconcile_total{result="error"} 1');
    expect(text).toContain('tro_reconcile_total{result="terminal"} 1');
    expect(text).toContain('tro_reconcile_errors_total 2');
    expect(text).toContain('tro_reconcile_duration_seconds_count 4');
    expect(text).toContain('tro_reconcile_duration_seconds_bucket{le="0.025"} 2');
  });

  it('reads queue depth at scrape time and reports leadership', async () => {
    const m = new ControllerMetrics();
    let depth = 3;
    m.trackQueue({ len: () => depth });
    m.trackQueue({ len: () => 2 });
    expect(await m.metrics()).toContain('tro_workqueue_depth 5');
    depth = 0;
    expect(await m.metrics()).toContain('tro_workqueue_depth 2');
    expect(await m.metrics()).toContain('tro_leader 0');
    m.setLeader(true);
    expect(await m.metrics()).toContain('tro_leader 1');
  });

  it('sets one phase to 1 and the others to 0, and forgets deleted rollouts', async () => {
    const m = new ControllerMetrics();
    m.setRolloutPhase('default', 'demo', 'Progressing');
    m.setRolloutPhase('default', 'demo', 'Succeeded');
    let text = await m.metrics();
    expect(text).toContain('tro_rollout_phase{namespace="default",name="demo",phase="Succeeded"} 1');
    expect(text).toContain('tro_rollout_phase{namespace="default",name="demo",phase="Progressing"} 0');
    m.setBreakGlassNeeded('default', 'demo', true);
    expect(await m.metrics()).toContain('tro_rollout_break_glass_needed{namespace="default",name="demo"} 1');
    m.setBreakGlassNeeded('default', 'demo', false);
    expect(await m.metrics()).toContain('tro_rollout_break_glass_needed{namespace="default",name="demo"} 0');
    m.deleteRollout('default', 'demo');
    text = await m.metrics();
    expect(text).not.toContain('name="demo"');
  });

  it('counts cluster API requests by outcome and rethrows errors unchanged', async () => {
    const m = new ControllerMetrics();
    const labels = { cluster: 'prod-east-1', verb: 'list', resource: 'nodes' };
    await expect(m.instrumentClusterCall(labels, async () => 'ok')).resolves.toBe('ok');
    const conflict = apiError(409, 'Conflict');
    await expect(m.instrumentClusterCall({ ...labels, verb: 'patch' }, () => Promise.reject(conflict))).rejects.toBe(conflict);
    await expect(m.instrumentClusterCall(labels, () => Promise.reject(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })))).rejects.toThrow('x');
    m.recordClusterApiRequest({ cluster: 'prod-east-1', verb: 'watch', resource: 'nodes', code: '200' });
    const text = await m.metrics();
    expect(text).toContain('tro_cluster_api_requests_total{cluster="prod-east-1",verb="list",resource="nodes",code="200"} 1');
    expect(text).toContain('tro_cluster_api_requests_total{cluster="prod-east-1",verb="patch",resource="nodes",code="409"} 1');
    expect(text).toContain('tro_cluster_api_requests_total{cluster="prod-east-1",verb="list",resource="nodes",code="<error>"} 1');
    expect(text).toContain('verb="watch"');
  });

  it('keeps registries apart, so several managers can coexist', async () => {
    const a = new ControllerMetrics();
    const b = new ControllerMetrics({ defaultMetrics: true });
    a.setLeader(true);
    expect(await a.metrics()).toContain('tro_leader 1');
    const bText = await b.metrics();
    expect(bText).toContain('tro_leader 0');
    expect(bText).toContain('process_cpu_user_seconds_total');
    expect(await a.metrics()).not.toContain('process_cpu_user_seconds_total');
    expect(a.contentType).toContain('text/plain');
  });
});
