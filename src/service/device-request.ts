import { invalidField } from '../domain/errors.js';
import type { ResourceClass } from '../domain/task.js';

/** A task's device request resolved against this node: what the queue places it by. */
export interface ResolvedRequest {
  /** "cpu", "cuda" (any GPU), "cuda:N" or "auto". */
  request: string;
  /** GPU memory it declared (GB); null on the CPU. */
  memGb: number | null;
}

export interface NodeGpus {
  /** This node's GPUs, by index, with their total memory. */
  gpus: readonly { index: number; totalMemoryGb: number }[];
  /** What `cuda` means on a node without GPUs: run on the CPU (noted), or refuse. */
  cudaFallback: 'cpu' | 'reject';
  /** Who has these GPUs, for messages: "this node" unless said. */
  where?: string;
}

type Gpus = NodeGpus['gpus'];

/**
 * In a cluster, a request is checked against the nodes rather than the one that happens to
 * receive it (behind a balancer, that is any of them). Implemented by the cluster node.
 */
export interface ClusterDevices {
  /** The GPUs of the live node of this name; null when no live node has it. */
  gpusOf(node: string): Promise<Gpus | null>;
  /** What any live node has: at each GPU index, the largest memory a node's GPU there has. */
  anyNode(): Gpus;
  /** The names of the live nodes, for the message when a name is unknown. */
  names(): string[];
}

/**
 * The GPUs a request is checked against: this node's alone; in a cluster, those of the node the
 * request pins it to (422 when no live node has that name), or else of any node.
 */
export async function gpusForRequest(
  node: string | undefined,
  own: NodeGpus,
  cluster: ClusterDevices | undefined,
): Promise<NodeGpus> {
  if (!cluster) {
    if (node !== undefined)
      throw invalidField('node', `there is no node '${node}': this service runs alone (no DATABASE_URL)`);
    return own;
  }
  if (node === undefined) return { ...own, gpus: cluster.anyNode(), where: 'no node' };
  const gpus = await cluster.gpusOf(node);
  if (!gpus) {
    const names = cluster.names();
    throw invalidField(
      'node',
      `no node named '${node}' is registered (live nodes: ${names.length ? names.join(', ') : 'none'})`,
    );
  }
  return { ...own, gpus, where: `node ${node}` };
}

/**
 * Resolves a device request against this node (SPEC §1): cpu, cuda (any GPU), cuda:N, auto.
 * `cuda` on a node without GPUs falls back to the CPU (a line for the task log goes into `notes`)
 * unless configured to reject; `cuda:N` out of range, and memory no eligible GPU has, are 422s.
 * Preprocessing always runs on the CPU.
 */
export function resolveDeviceRequest(
  cls: ResourceClass,
  device: string | undefined,
  memGb: number | null,
  node: NodeGpus,
  notes: string[],
): ResolvedRequest {
  if (cls === 'preprocessing') return { request: 'cpu', memGb: null };
  const request = resolveDevice(device ?? 'cuda', node, notes);
  if (request === 'cpu') return { request, memGb: null };
  if (memGb != null && request !== 'auto') {
    const eligible = request.startsWith('cuda:')
      ? node.gpus.filter((g) => `cuda:${g.index}` === request)
      : node.gpus;
    const largest = Math.max(0, ...eligible.map((g) => g.totalMemoryGb));
    if (memGb > largest) {
      throw invalidField(
        'gpu_memory_gb',
        `${memGb} GB can never fit: the largest eligible GPU has ${Math.round(largest * 10) / 10} GB in all`,
      );
    }
  }
  return { request, memGb };
}

function resolveDevice(want: string, { gpus, cudaFallback, where }: NodeGpus, notes: string[]): string {
  // "this node has no GPU"; in a cluster "no node has …" or "node x has no GPU".
  const who = where ?? 'this node';
  const has = who === 'no node' ? 'a node has at most' : `${who} has`;
  if (want === 'cpu') return 'cpu';
  if (want === 'auto') return gpus.length > 0 ? 'auto' : 'cpu';
  if (want === 'cuda') {
    if (gpus.length > 0) return 'cuda';
    if (cudaFallback === 'reject') {
      throw invalidField(
        'device',
        `'cuda' was requested but ${who === 'no node' ? 'no node has a' : `${who} has no`} GPU`,
      );
    }
    notes.push(
      `Device 'cuda' was requested but ${who === 'no node' ? 'no node has a' : `${who} has no`} GPU: the task will run on cpu`,
    );
    return 'cpu';
  }
  const m = /^cuda:(\d+)$/.exec(want);
  if (!m) throw invalidField('device', `'${want}' is not one of cpu, cuda, cuda:N, auto`);
  if (Number(m[1]) >= gpus.length) {
    throw invalidField(
      'device',
      `${want} is out of range: ${has} ${gpus.length} GPU${gpus.length === 1 ? '' : 's'}`,
    );
  }
  return want;
}
