import os from 'node:os';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { conflict, notFound } from '../../domain/errors.js';
import type { NodeRow } from '../../store/postgres/cluster.js';
import type { AppDeps } from '../deps.js';
import { adminOnly } from '../hooks.js';
import { ErrorSchema } from '../schemas.js';

const NodeParams = Type.Object({ node: Type.String({ minLength: 1, maxLength: 100 }) });

/** A node as clients see it: the stored row, plus which one answered (also in /resources). */
export function nodeView(n: NodeRow, self: string) {
  return { ...n, this_node: n.node_id === self };
}

/** GET /api/v2/nodes and POST /api/v2/nodes/{node}/drain (SPEC §4). */
export function nodeRoutes(deps: AppDeps) {
  return async (app: FastifyInstance) => {
    listRoute(app, deps);
    drainRoute(app, deps);
  };
}

function listRoute(app: FastifyInstance, deps: AppDeps): void {
  app.get(
    '/api/v2/nodes',
    {
      schema: {
        tags: ['nodes'],
        summary: 'The nodes sharing the queue: state, heartbeat age, devices, usage, limits',
      },
    },
    async () => {
      const cluster = deps.clusterNode;
      if (cluster) {
        const nodes = (await cluster.nodes()).map((n) => nodeView(n, cluster.node.id));
        return { total: nodes.length, nodes };
      }
      // One node on SQLite: this process, always answering.
      const s = deps.service.snapshot();
      const now = new Date().toISOString();
      const self: NodeRow = {
        node_id: 'local',
        name: deps.config.node.name,
        host: os.hostname(),
        pid: process.pid,
        state: deps.service.accepting ? 'active' : 'stopped',
        devices: s.devices,
        limits: s.limits,
        usage: s.usage,
        started_at: deps.service.startedAt,
        heartbeat_at: now,
        heartbeat_age_s: 0,
      };
      return { total: 1, nodes: [nodeView(self, 'local')] };
    },
  );
}

function drainRoute(app: FastifyInstance, deps: AppDeps): void {
  app.post<{ Params: Static<typeof NodeParams> }>(
    '/api/v2/nodes/:node/drain',
    {
      preHandler: adminOnly,
      schema: {
        tags: ['nodes'],
        summary: 'Stop a node claiming work (its id or name); what it runs finishes',
        params: NodeParams,
        response: { 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) => {
      const cluster = deps.clusterNode;
      if (!cluster) {
        throw conflict('draining needs cluster mode (DATABASE_URL): a single node stops with SIGTERM');
      }
      const node = await cluster.drain(request.params.node);
      if (!node) throw notFound(`no active node '${request.params.node}'`);
      return {
        status: 'success',
        message: `node ${node.name} is draining`,
        node: nodeView(node, cluster.node.id),
      };
    },
  );
}
