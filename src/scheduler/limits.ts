import type { LimitSpec } from '../config.js';
import { RESOURCE_CLASSES, type ResourceClass } from '../domain/task.js';
import type { DeviceInfo } from '../domain/devices.js';
import type { Limits } from './types.js';

/** SPEC §1 defaults: each GPU training 1 / inference 3; cpu training 2 / inference 4 / preprocessing 2. */
export const DEFAULT_GPU_LIMITS: Record<ResourceClass, number> = {
  training: 1,
  inference: 3,
  preprocessing: 0,
};
export const DEFAULT_CPU_LIMITS: Record<ResourceClass, number> = {
  training: 2,
  inference: 4,
  preprocessing: 2,
};

/**
 * Effective limits per device: defaults, then each layer of overrides in order. Within a layer the
 * generic key ("gpu"/"cuda": every GPU) applies before a specific "cuda:N".
 */
export function effectiveLimits(devices: DeviceInfo[], ...layers: LimitSpec[]): Limits {
  const out: Limits = {};
  for (const d of devices) out[d.id] = { ...(d.kind === 'gpu' ? DEFAULT_GPU_LIMITS : DEFAULT_CPU_LIMITS) };
  for (const layer of layers) {
    for (const generic of ['gpu', 'cuda']) {
      const spec = layer[generic];
      if (!spec) continue;
      for (const d of devices) if (d.kind === 'gpu') Object.assign(out[d.id] as object, spec);
    }
    for (const [key, spec] of Object.entries(layer)) {
      if (key === 'gpu' || key === 'cuda') continue;
      const target = out[key];
      if (target) Object.assign(target, spec);
    }
  }
  return out;
}

/** Merges `change` into `base` (both keyed by device key, then class). */
export function mergeSpecs(base: LimitSpec, change: LimitSpec): LimitSpec {
  const out: LimitSpec = structuredClone(base);
  for (const [key, spec] of Object.entries(change)) {
    // A generic change supersedes earlier per-GPU values for the classes it names.
    if (key === 'gpu' || key === 'cuda') {
      for (const k of Object.keys(out)) {
        if (!k.startsWith('cuda:')) continue;
        const entry = out[k] as Partial<Record<ResourceClass, number>>;
        for (const cls of Object.keys(spec) as ResourceClass[]) delete entry[cls];
        if (RESOURCE_CLASSES.every((c) => entry[c] === undefined)) delete out[k];
      }
    }
    const normal = key === 'cuda' ? 'gpu' : key;
    out[normal] = { ...(out[normal] ?? {}), ...spec };
  }
  return out;
}
