import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterPendingReason, type WaitingNeeds } from '../../src/cluster/pending-reason.js';
import type { NodeRow } from '../../src/store/postgres/cluster.js';

/** A node with one CPU and `gpus` GPUs of 16 GB, one training slot each, `busy` of them in use. */
function node(name: string, gpus: number, busy: number, state: NodeRow['state'] = 'active'): NodeRow {
  const devices: NodeRow['devices'] = [
    { id: 'cpu', kind: 'cpu', index: null, name: 'CPU', totalMemoryGb: null, freeMemoryGb: null },
  ];
  const limits: NodeRow['limits'] = { cpu: { training: 1, inference: 1, preprocessing: 2 } };
  const usage: NodeRow['usage'] = { cpu: { training: 0, inference: 0, preprocessing: 0 } };
  for (let i = 0; i < gpus; i++) {
    const id = `cuda:${i}`;
    devices.push({ id, kind: 'gpu', index: i, name: 'GPU', totalMemoryGb: 16, freeMemoryGb: 16 });
    limits[id] = { training: 1, inference: 2, preprocessing: 0 };
    usage[id] = { training: i < busy ? 1 : 0, inference: 0, preprocessing: 0 };
  }
  return {
    node_id: `${name}-id`,
    name,
    host: 'h',
    pid: 1,
    state,
    devices,
    limits,
    usage,
    started_at: '',
    heartbeat_at: '',
    heartbeat_age_s: 0,
  };
}

const cuda: WaitingNeeds = { cls: 'training', request: 'cuda', memGb: null, pin: null };

describe('cluster-wide pending reasons', () => {
  it('counts the nodes that could run a task and says when all of them are busy', () => {
    const nodes = [
      node('a', 1, 1),
      node('b', 2, 2),
      node('c', 1, 1),
      node('d', 0, 0),
      node('e', 1, 0, 'lost'),
    ];
    assert.equal(clusterPendingReason(cuda, nodes), 'waiting for a cuda training slot: 3 nodes, all busy');
  });

  it('says how many have a slot free when some do', () => {
    const nodes = [node('a', 1, 1), node('b', 2, 1)];
    assert.equal(
      clusterPendingReason(cuda, nodes),
      'waiting for a cuda training slot: 1 of 2 nodes has one free; tasks are claimed in queue order',
    );
  });

  it('names a GPU index, memory, and nodes that can never run it', () => {
    const nodes = [node('a', 1, 0), node('b', 0, 0)];
    assert.equal(
      clusterPendingReason({ ...cuda, request: 'cuda:1', memGb: 8 }, nodes),
      'waiting for a training slot on cuda:1 with 8 GB of GPU memory: no active node has one (2 active nodes)',
    );
    assert.equal(
      clusterPendingReason({ ...cuda, memGb: 24 }, nodes),
      'waiting for a cuda training slot with 24 GB of GPU memory: no active node has one (2 active nodes)',
    );
  });

  it('speaks of the pinned node only, and says when it is not active', () => {
    const nodes = [node('a', 1, 1), node('b', 1, 0), node('c', 1, 0, 'draining')];
    assert.equal(
      clusterPendingReason({ ...cuda, pin: 'a' }, nodes),
      'waiting for a cuda training slot on node a: 1 node, busy',
    );
    assert.equal(
      clusterPendingReason({ ...cuda, pin: 'c' }, nodes),
      'waiting for node c (it runs only there), which is draining',
    );
    assert.equal(
      clusterPendingReason({ ...cuda, pin: 'x' }, nodes),
      'waiting for node x (it runs only there), which is not registered',
    );
  });
});
