import type { FastifyInstance } from 'fastify';
import type { JobDefinition } from '../../jobs/job.js';
import type { AppDeps, HttpShared } from '../deps.js';
import { registerFamily } from './family.js';

/** POST /api/v2/preprocessing/<route> for every registered preprocessing job, plus reads. */
export function preprocessingRoutes(deps: AppDeps, shared: HttpShared) {
  return async (app: FastifyInstance) => {
    const { registry } = deps;
    const defs = registry
      .kinds()
      .map((k) => registry.get(k))
      .filter((d): d is JobDefinition => d?.resourceClass === 'preprocessing' && Boolean(d.route));
    registerFamily(app, deps, shared, {
      family: 'preprocessing',
      creators: defs.map((def) => ({ route: def.route as string, def, summary: `Queue a ${def.kind} task` })),
      kinds: defs.map((d) => d.kind),
      withDevice: false,
      cancelRoute: 'cancel',
    });
  };
}
