/**
 * Writes python/rfuav_torch/request_defaults.json: the defaults of the PyTorch runner's request
 * fields, read off the TypeScript schemas that declare them, so that the Python side
 * (python/rfuav_torch/requests.py) has them from this one source instead of restating them. The
 * service always sends every field; the file is for a runner started by hand or by a test with
 * part of a request.
 *
 *   node --import tsx scripts/runner-defaults.ts          write the file
 *   node --import tsx scripts/runner-defaults.ts --check  fail (exit 1) if it is stale
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TObject } from '@sinclair/typebox';
import { EvaluationBody } from '../src/jobs/evaluation.js';
import { InferenceBody } from '../src/jobs/inference.js';
import { RunnerFields } from '../src/jobs/torch-run.js';
import { TrainingBody } from '../src/jobs/training.js';

export const DEFAULTS_FILE = path.resolve(import.meta.dirname, '../python/rfuav_torch/request_defaults.json');

/**
 * Section -> the schema whose defaults it holds, and for a body wider than the runner's request
 * the fields the runner gets. `runner` applies to every command; the others are command names
 * (a command whose fields have no defaults needs no line).
 */
const SECTIONS: Record<string, { schema: TObject; fields?: string[] }> = {
  runner: { schema: RunnerFields },
  train: { schema: TrainingBody },
  evaluate: { schema: EvaluationBody },
  // The body also configures the ONNX engines and raw-IQ slicing; the runner gets batch_size.
  infer: { schema: InferenceBody, fields: ['batch_size'] },
};

/** Every `default` of a schema's top-level fields (or of the named ones), in schema order. */
function defaultsOf(schema: TObject, fields?: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, prop] of Object.entries(schema.properties)) {
    if (fields && !fields.includes(name)) continue;
    if (prop.default !== undefined) out[name] = prop.default;
  }
  const unknown = (fields ?? []).filter((f) => !(f in schema.properties));
  if (unknown.length) throw new Error(`not fields of the schema: ${unknown.join(', ')}`);
  return out;
}

/** The file's text as the schemas say it should be (prettier leaves it as it is). */
export function runnerDefaultsText(): string {
  const doc: Record<string, unknown> = {
    $comment:
      'Written by scripts/runner-defaults.ts from the TypeScript job schemas; do not edit. ' +
      'Read by requests.py: "runner" applies to every command.',
  };
  for (const [section, { schema, fields }] of Object.entries(SECTIONS)) {
    doc[section] = defaultsOf(schema, fields);
  }
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function main(check: boolean): number {
  const want = runnerDefaultsText();
  const have = fs.existsSync(DEFAULTS_FILE) ? fs.readFileSync(DEFAULTS_FILE, 'utf8') : null;
  const rel = path.relative(process.cwd(), DEFAULTS_FILE);
  if (have === want) {
    console.log(`${rel} is up to date`);
    return 0;
  }
  if (check) {
    console.error(`${rel} is stale: run node --import tsx scripts/runner-defaults.ts`);
    return 1;
  }
  fs.writeFileSync(DEFAULTS_FILE, want);
  console.log(`wrote ${rel}`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.includes('--check'));
}
