/**
 * The node agent's telemetry as Prometheus gauges on the agent's own registry. Labelled gauges are reset
 * on every update so that vanished pods, containers and interfaces disappear instead of going stale.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { PodInfo } from '../kubelet.js';
import type { NodeSample } from './procfs.js';

/** Gauges of node telemetry, pod/container info and collection health. */
export class NodeMetrics {
  private readonly cpuSeconds: Gauge<'mode'>;
  private readonly cpuUsage: Gauge;
  private readonly cpus: Gauge;
  private readonly memory: Gauge<'kind'>;
  private readonly fsBytes: Gauge<'mountpoint' | 'kind'>;
  private readonly fsFiles: Gauge<'mountpoint' | 'kind'>;
  private readonly netBytes: Gauge<'device' | 'direction'>;
  private readonly netPackets: Gauge<'device' | 'direction'>;
  private readonly netErrors: Gauge<'device' | 'direction'>;
  private readonly netUp: Gauge<'device'>;
  private readonly pods: Gauge<'phase'>;
  private readonly containers: Gauge<'state'>;
  private readonly containerRestarts: Gauge<'namespace' | 'pod' | 'container'>;
  private readonly containerReady: Gauge<'namespace' | 'pod' | 'container'>;
  private readonly nodeInfo: Gauge<'node' | 'kubelet_version' | 'os_image' | 'zone' | 'instance_type'>;
  /** Failed collections by source (cpu, memory, network, filesystem:<mp>, pods, node-info). */
  readonly collectErrors: Counter<'source'>;
  /** Completed collection cycles. */
  readonly collections: Counter;
  /** Unix time of the last completed collection. */
  readonly lastCollect: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.cpuSeconds = new Gauge({
      name: 'collector_node_cpu_seconds',
      help: 'Cumulative CPU time of all CPUs by mode (from /proc/stat).',
      labelNames: ['mode'],
      registers,
    });
    this.cpuUsage = new Gauge({ name: 'collector_node_cpu_usage_ratio', help: 'Busy fraction of all CPUs between the last two collections.', registers });
    this.cpus = new Gauge({ name: 'collector_node_cpus', help: 'Number of CPUs (from /proc/stat).', registers });
    this.memory = new Gauge({ name: 'collector_node_memory_bytes', help: 'Memory by kind (from /proc/meminfo).', labelNames: ['kind'], registers });
    this.fsBytes = new Gauge({
      name: 'collector_node_filesystem_bytes',
      help: 'Filesystem size, free and available bytes (statfs).',
      labelNames: ['mountpoint', 'kind'],
      registers,
    });
    this.fsFiles = new Gauge({
      name: 'collector_node_filesystem_files',
      help: 'Filesystem inodes, total and free (statfs).',
      labelNames: ['mountpoint', 'kind'],
      registers,
    });
    this.netBytes = new Gauge({
      name: 'collector_node_network_bytes',
      help: 'Cumulative bytes per interface and direction (from /proc/net/dev).',
      labelNames: ['device', 'direction'],
      registers,
    });
    this.netPackets = new Gauge({
      name: 'collector_node_network_packets',
      help: 'Cumulative packets per interface and direction.',
      labelNames: ['device', 'direction'],
      registers,
    });
    this.netErrors = new Gauge({
      name: 'collector_node_network_errors',
      help: 'Cumulative errors per interface and direction.',
      labelNames: ['device', 'direction'],
      registers,
    });
    this.netUp = new Gauge({ name: 'collector_node_network_up', help: 'Interface operstate is up (from /sys/class/net).', labelNames: ['device'], registers });
    this.pods = new Gauge({ name: 'collector_pods', help: 'Pods on this node by phase.', labelNames: ['phase'], registers });
    this.containers = new Gauge({ name: 'collector_containers', help: 'Containers on this node by state.', labelNames: ['state'], registers });
    this.containerRestarts = new Gauge({
      name: 'collector_container_restarts',
      help: 'Restart count per container.',
      labelNames: ['namespace', 'pod', 'container'],
      registers,
    });
    this.containerReady = new Gauge({
      name: 'collector_container_ready',
      help: '1 if the container is ready.',
      labelNames: ['namespace', 'pod', 'container'],
      registers,
    });
    this.nodeInfo = new Gauge({
      name: 'collector_node_info',
      help: 'Node facts from its Node object (value always 1).',
      labelNames: ['node', 'kubelet_version', 'os_image', 'zone', 'instance_type'],
      registers,
    });
    this.collectErrors = new Counter({ name: 'collector_collect_errors_total', help: 'Failed collections by source.', labelNames: ['source'], registers });
    this.collections = new Counter({ name: 'collector_collections_total', help: 'Completed collection cycles.', registers });
    this.lastCollect = new Gauge({ name: 'collector_last_collect_timestamp_seconds', help: 'Unix time of the last completed collection.', registers });
  }

  /** Publishes a node sample (sections absent from the sample keep their previous values). */
  updateNode(s: NodeSample): void {
    if (s.cpu) {
      for (const [mode, v] of Object.entries(s.cpu.times) as [string, number][]) this.cpuSeconds.set({ mode }, v);
      this.cpus.set(s.cpu.cpus);
      if (s.cpu.usageRatio !== undefined) this.cpuUsage.set(s.cpu.usageRatio);
    }
    if (s.memory) {
      const m = s.memory;
      this.memory.set({ kind: 'total' }, m.totalBytes);
      this.memory.set({ kind: 'free' }, m.freeBytes);
      this.memory.set({ kind: 'available' }, m.availableBytes);
      this.memory.set({ kind: 'buffers' }, m.buffersBytes);
      this.memory.set({ kind: 'cached' }, m.cachedBytes);
      this.memory.set({ kind: 'swap_total' }, m.swapTotalBytes);
      this.memory.set({ kind: 'swap_free' }, m.swapFreeBytes);
    }
    if (!s.errors.some((e) => e.source.startsWith('filesystem'))) {
      this.fsBytes.reset();
      this.fsFiles.reset();
    }
    for (const f of s.filesystems) {
      this.fsBytes.set({ mountpoint: f.mountpoint, kind: 'size' }, f.sizeBytes);
      this.fsBytes.set({ mountpoint: f.mountpoint, kind: 'free' }, f.freeBytes);
      this.fsBytes.set({ mountpoint: f.mountpoint, kind: 'avail' }, f.availBytes);
      this.fsFiles.set({ mountpoint: f.mountpoint, kind: 'total' }, f.files);
      this.fsFiles.set({ mountpoint: f.mountpoint, kind: 'free' }, f.filesFree);
    }
    if (!s.errors.some((e) => e.source === 'network')) {
      for (const g of [this.netBytes, this.netPackets, this.netErrors]) g.reset();
      this.netUp.reset();
      for (const d of s.network) {
        this.netBytes.set({ device: d.device, direction: 'receive' }, d.receiveBytes);
        this.netBytes.set({ device: d.device, direction: 'transmit' }, d.transmitBytes);
        this.netPackets.set({ device: d.device, direction: 'receive' }, d.receivePackets);
        this.netPackets.set({ device: d.device, direction: 'transmit' }, d.transmitPackets);
        this.netErrors.set({ device: d.device, direction: 'receive' }, d.receiveErrors);
        this.netErrors.set({ device: d.device, direction: 'transmit' }, d.transmitErrors);
        if (d.up !== undefined) this.netUp.set({ device: d.device }, d.up ? 1 : 0);
      }
    }
    for (const e of s.errors) this.collectErrors.inc({ source: e.source });
  }

  /** Publishes the pods of this node (replacing the previous set). */
  updatePods(pods: PodInfo[]): void {
    this.pods.reset();
    this.containers.reset();
    this.containerRestarts.reset();
    this.containerReady.reset();
    const phases = new Map<string, number>();
    const states = new Map<string, number>();
    for (const p of pods) {
      phases.set(p.phase, (phases.get(p.phase) ?? 0) + 1);
      for (const c of p.containers) {
        states.set(c.state, (states.get(c.state) ?? 0) + 1);
        const labels = { namespace: p.namespace, pod: p.name, container: c.name };
        this.containerRestarts.set(labels, c.restartCount);
        this.containerReady.set(labels, c.ready ? 1 : 0);
      }
    }
    for (const [phase, n] of phases) this.pods.set({ phase }, n);
    for (const [state, n] of states) this.containers.set({ state }, n);
  }

  /** Publishes facts from the node's Node object. */
  updateNodeInfo(info: { node: string; kubeletVersion: string; osImage: string; zone: string; instanceType: string }): void {
    this.nodeInfo.reset();
    this.nodeInfo.set({ node: info.node, kubelet_version: info.kubeletVersion, os_image: info.osImage, zone: info.zone, instance_type: info.instanceType }, 1);
  }
}
