import { afterEach, describe, it, expect } from '@jest/globals';
import { KubeletClient, fetchGetter, httpGetter, podInfoFrom } from './kubelet.js';
import { NetworkError, StoppedError } from './errors.js';
import { FakeKubelet, kubeletPod } from './testing/fakekubelet.js';
import { waitFor } from '../../testkit/core/fakeclock.js';
import { counterValue, makeRig, stopFileFor, TEST_REVISION, TEST_STOP_PATH } from './testing/harness.js';

let kubelet: FakeKubelet | undefined;
afterEach(async () => {
  await kubelet?.stop();
  kubelet = undefined;
});

async function setup() {
  kubelet = new FakeKubelet();
  const url = await kubelet.start();
  const rig = makeRig();
  const client = new KubeletClient({ baseURL: url, getter: httpGetter, metrics: rig.metrics, killSwitch: rig.killSwitch });
  return { kubelet, rig, client, url };
}

describe('podInfoFrom', () => {
  it('extracts pod and container facts, tolerating missing status', () => {
    expect(podInfoFrom(kubeletPod('ns', 'p', 'n1', { restarts: 3, ready: false }))).toEqual({
      namespace: 'ns',
      name: 'p',
      uid: 'uid-ns-p',
      nodeName: 'n1',
      phase: 'Running',
      containers: [{ name: 'app', image: 'registry.example/app:1', ready: false, restartCount: 3, state: 'running' }],
    });
    expect(podInfoFrom({ metadata: { name: 'x' }, spec: { containers: [{ name: 'c' }] } })).toMatchObject({
      phase: 'Unknown',
      containers: [{ name: 'c', ready: false, restartCount: 0, state: 'unknown' }],
    });
  });
});

describe('KubeletClient', () => {
  it('GETs <kubeletURL>/pods over HTTP and counts requests by code', async () => {
    const { kubelet, rig, client } = await setup();
    kubelet.pods = [kubeletPod('a', 'p1', 'n1'), kubeletPod('b', 'p2', 'n1', { containers: ['x', 'y'] })];
    const pods = await client.pods();
    expect(pods.map((p) => `${p.namespace}/${p.name}:${p.containers.length}`)).toEqual(['a/p1:1', 'b/p2:2']);
    expect(kubelet.requests).toEqual(['/pods']);
    kubelet.status = 503;
    await expect(client.pods()).rejects.toThrow('HTTP 503');
    expect(await counterValue(rig.metrics.kubeletRequests, { code: '200' })).toBe(1);
    expect(await counterValue(rig.metrics.kubeletRequests, { code: '503' })).toBe(1);
    expect(await counterValue(rig.metrics.kubeletResponseBytes)).toBeGreaterThan(200);
  });

  it('counts a connection failure as code "error"', async () => {
    const { kubelet, rig } = await setup();
    await kubelet.stop();
    const dead = new KubeletClient({ baseURL: 'http://127.0.0.1:1', getter: httpGetter, metrics: rig.metrics, killSwitch: rig.killSwitch });
    await expect(dead.pods()).rejects.toBeInstanceOf(NetworkError);
    expect(await counterValue(rig.metrics.kubeletRequests, { code: 'error' })).toBe(1);
  });

  it('gets the same answers through fetchGetter (the former default)', async () => {
    const { kubelet, rig, url } = await setup();
    kubelet.pods = [kubeletPod('a', 'p1', 'n1')];
    const viaFetch = new KubeletClient({ baseURL: url, getter: fetchGetter, metrics: rig.metrics, killSwitch: rig.killSwitch });
    expect((await viaFetch.pods()).map((p) => p.name)).toEqual(['p1']);
    await expect(new KubeletClient({ baseURL: 'http://127.0.0.1:1', getter: fetchGetter, metrics: rig.metrics, killSwitch: rig.killSwitch }).pods()).rejects.toBeInstanceOf(NetworkError);
  });

  it('is refused while the stop file is engaged and aborted mid-flight when it appears', async () => {
    const { kubelet, rig, client } = await setup();
    kubelet.hang = true;
    const inflight = client.pods().catch((e: unknown) => e);
    // Wait until the request reached the kubelet before engaging the switch.
    await waitFor(() => kubelet.requests.length > 0, 5000, 'request at the kubelet');
    rig.fs.write(TEST_STOP_PATH, stopFileFor(TEST_REVISION));
    await rig.killSwitch.poll();
    expect(await inflight).toBeInstanceOf(StoppedError);
    await expect(client.pods()).rejects.toBeInstanceOf(StoppedError);
    expect(kubelet.requests).toHaveLength(1);
    expect(await counterValue(rig.metrics.kubeletRequests, { code: 'aborted' })).toBe(1);
  });
});
