import type { ResourceClass } from '../domain/task.js';
import type { NodeRow } from '../store/postgres/cluster.js';

/** What a waiting task needs, as the shared queue holds it. */
export interface WaitingNeeds {
  cls: ResourceClass;
  /** cpu, cuda, cuda:N or auto (cuda:N is the GPU of whichever node runs it). */
  request: string;
  memGb: number | null;
  /** Only this node may run it. */
  pin: string | null;
}

/**
 * Why a task waits in the shared queue, in plain words and for the whole cluster, from the nodes
 * as of the last heartbeat: "waiting for a cuda training slot: 3 nodes, all busy". It says which
 * kind of slot, how many active nodes could ever give one, and whether any has one free now.
 */
export function clusterPendingReason(t: WaitingNeeds, nodes: readonly NodeRow[]): string {
  const what = slotWanted(t);
  const active = nodes.filter((n) => n.state === 'active');
  if (t.pin !== null && !active.some((n) => n.name === t.pin)) {
    const state = nodes.find((n) => n.name === t.pin)?.state;
    return `waiting for node ${t.pin} (it runs only there), which is ${state ?? 'not registered'}`;
  }
  const scope = t.pin === null ? active : active.filter((n) => n.name === t.pin);
  const able = scope.filter((n) => eligible(t, n).length > 0);
  const where = t.pin === null ? '' : ` on node ${t.pin}`;
  if (able.length === 0) {
    return `waiting for ${what}${where}: no active node has one (${scope.length} active node${scope.length === 1 ? '' : 's'})`;
  }
  const free = able.filter((n) => eligible(t, n).some((d) => hasRoom(t, n, d))).length;
  const count = `${able.length} node${able.length === 1 ? '' : 's'}`;
  if (free === 0) return `waiting for ${what}${where}: ${count}, ${able.length === 1 ? 'busy' : 'all busy'}`;
  return `waiting for ${what}${where}: ${free} of ${count} ${free === 1 ? 'has' : 'have'} one free; tasks are claimed in queue order`;
}

function slotWanted(t: WaitingNeeds): string {
  const mem = t.memGb ? ` with ${t.memGb} GB of GPU memory` : '';
  if (t.request === 'cpu') return `a cpu ${t.cls} slot`;
  if (t.request === 'auto') return `a ${t.cls} slot (GPU or CPU)${mem}`;
  if (t.request === 'cuda') return `a cuda ${t.cls} slot${mem}`;
  return `a ${t.cls} slot on ${t.request}${mem}`;
}

/** The devices of `n` that could ever run `t`: the right kind, a slot for its class, the memory. */
function eligible(t: WaitingNeeds, n: NodeRow): NodeRow['devices'] {
  return n.devices.filter((d) => {
    const kindOk =
      t.request === 'auto' ||
      (t.request === 'cpu' ? d.kind === 'cpu' : t.request === 'cuda' ? d.kind === 'gpu' : d.id === t.request);
    const memOk = d.kind !== 'gpu' || t.memGb == null || (d.totalMemoryGb ?? 0) >= t.memGb;
    return kindOk && memOk && (n.limits[d.id]?.[t.cls] ?? 0) > 0;
  });
}

/** Whether device `d` of `n` has a free slot (and the free memory) for `t` as of the heartbeat. */
function hasRoom(t: WaitingNeeds, n: NodeRow, d: NodeRow['devices'][number]): boolean {
  const used = n.usage[d.id]?.[t.cls] ?? 0;
  const memOk = d.kind !== 'gpu' || t.memGb == null || (d.freeMemoryGb ?? d.totalMemoryGb ?? 0) >= t.memGb;
  return used < (n.limits[d.id]?.[t.cls] ?? 0) && memOk;
}
