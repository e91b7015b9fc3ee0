#!/usr/bin/env node
// Fails when a module under src/ imports from a layer above its own. The order is written here
// once, bottom first; a module may import its own layer and the ones below (the cycle check,
// scripts/check-cycles.mjs, keeps a layer free of circles). Also: a job file (one task kind) is
// never a library, so only the composition root imports one; what two kinds share lives below
// them (jobs/job.ts and jobs/torch-run.ts are the jobs layer's own shared parts).
import path from 'node:path';
import { relativeImports, tsFiles } from './imports.mjs';

export const LAYERS = [
  ['types', 'domain'], // pure: task kinds, errors, device and metric definitions
  ['util', 'config.ts'], // the sandbox, file helpers, random; typed configuration
  ['signal'], // IQ, STFT, rendering, slicing, signal parameters, synth
  ['augment', 'charts', 'devices', 'metrics', 'store'],
  ['logbus', 'scheduler', 'engines'], // the pure scheduler core; PyTorch and ONNX Runtime engines
  ['workers', 'cluster'], // worker-thread tasks and their pool; a node of a PostgreSQL cluster
  ['jobs'], // one file per task kind
  ['predict', 'service'],
  ['http'],
  ['main.ts'], // the composition root
  ['cli'],
];
const SHARED_JOB_FILES = new Set(['job.ts', 'torch-run.ts']);

const src = path.resolve(process.argv[2] ?? 'src');
const rank = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i])));

/** "jobs" for src/jobs/x.ts, "main.ts" for src/main.ts. */
function unit(file) {
  return path.relative(src, file).split(path.sep)[0];
}

const files = tsFiles(src);

const problems = [];
for (const file of files) {
  const from = unit(file);
  if (!rank.has(from))
    problems.push(`${path.relative(src, file)}: '${from}' has no layer in scripts/check-layers.mjs`);
  for (const target of relativeImports(file)) {
    if (!target.startsWith(src + path.sep)) continue;
    const to = unit(target);
    const shown = `${path.relative(src, file)} -> ${path.relative(src, target)}`;
    if (!rank.has(to)) continue; // reported for its own files
    if (rank.get(to) > rank.get(from))
      problems.push(`${shown}: '${from}' may not import the layer above it ('${to}')`);
    const isJobFile = to === 'jobs' && !SHARED_JOB_FILES.has(path.basename(target));
    if (isJobFile && from !== 'main.ts') {
      problems.push(
        from === 'jobs'
          ? `${shown}: job files do not import each other; move what they share below jobs/`
          : `${shown}: a job file is imported only by the composition root; move what is shared below jobs/`,
      );
    }
  }
}
if (problems.length) {
  for (const p of problems) console.error(`layering: ${p}`);
  process.exit(1);
}
console.log(`imports point downward in ${files.length} modules (${LAYERS.length} layers)`);
