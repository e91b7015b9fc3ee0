import type { FastifyInstance } from 'fastify';
import { creationRoute, queueSummary, type JobDefinition } from '../../jobs/job.js';
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
    const families = new Map<string, JobDefinition[]>();
    for (const def of deps.registry.all()) {
      const at = creationRoute(def);
      if (!at) continue;
      families.set(at.family, [...(families.get(at.family) ?? []), def]);
    }
    for (const [family, defs] of families) {
      registerFamily(app, deps, shared, {
        family,
        creators: defs.map((def) => ({
          route: creationRoute(def)?.route as string,
          def,
          summary: queueSummary(def.kind),
        })),
        kinds: defs.map((d) => d.kind),
        withDevice: defs.some((d) => d.resourceClass !== 'preprocessing'),
        cancelRoute: CANCEL_ROUTES[family],
      });
    }
  };
}
