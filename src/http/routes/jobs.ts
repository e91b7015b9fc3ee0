import type { FastifyInstance } from 'fastify';
import { creationRoute, queueSummary } from '../../jobs/job.js';
import type { AppDeps, HttpShared } from '../deps.js';
import { registerFamily, type FamilyOptions } from './family.js';

/**
 * The reference's per-family cancel routes (training/{id}/stop, preprocessing/{id}/cancel); other
 * families cancel through /api/v2/tasks/{id}/cancel.
 */
const CANCEL_ROUTES: Record<string, FamilyOptions['cancelRoute']> = {
  training: 'stop',
  preprocessing: 'cancel',
};

/**
 * Every registered kind's routes, from the registry: POST /api/v2/<family>/<route> creates a task
 * of the kind, and each family answers GET /{task_id}, GET /{task_id}/logs (and its cancel route)
 * for its own kinds. A new kind gets its routes, and its place in the OpenAPI document, from its
 * registration alone.
 */
export function jobRoutes(deps: AppDeps, shared: HttpShared) {
  return async (app: FastifyInstance) => {
    const families = new Map<string, FamilyOptions['creators']>();
    for (const def of deps.registry.all()) {
      const at = creationRoute(def);
      if (!at) continue;
      const creators = families.get(at.family) ?? [];
      creators.push({ route: at.route, def, summary: queueSummary(def.kind) });
      families.set(at.family, creators);
    }
    for (const [family, creators] of families) {
      const defs = creators.map((c) => c.def);
      registerFamily(app, deps, shared, {
        family,
        creators,
        kinds: defs.map((d) => d.kind),
        withDevice: defs.some((d) => d.resourceClass !== 'preprocessing'),
        cancelRoute: CANCEL_ROUTES[family],
      });
    }
  };
}
