/**
 * The task-submitting commands, one per registered kind: options and request body come from the
 * kind's own body schema plus the fields every task request takes, so nothing here restates a
 * job's fields. A kind's entry (its own file beside this one) only adds what a schema cannot say:
 * the command's name, today's shorter spellings, which lines to print and how to report.
 */
import { creationRoute as jobCreationRoute, queueSummary } from '../../jobs/job.js';
import { Type, type TObject } from '@sinclair/typebox';
import { CommonTaskFields, DeviceFields } from '../../http/schemas.js';
import type { builtinJobSchemas } from '../../main.js';
import { apiClient, CLIENT_OPTIONS, taskPath, type Command } from '../command.js';
import { followTask } from '../follow.js';
import type { LogLine, TaskView } from '../format.js';
import type { Args, Option } from '../options.js';
import { bodyFrom, schemaOptions, type FieldOption } from '../schema-options.js';

export type JobSchema = ReturnType<typeof builtinJobSchemas>[number];

/** An option that is not one body field (spectrogram's `--animation FORMAT`). */
export interface ExtraOption {
  option: Option;
  /** The field whose own flag this one takes the place of. */
  replaces?: string;
  apply(value: unknown, body: Record<string, unknown>): void;
}

export interface SubmitEntry {
  kind: string;
  /** The command's name (default: the kind's route, else the kind). */
  name?: string;
  summary?: string;
  /** Other spellings of a field's flag, kept from before flags were read off the schema. */
  aliases?: Record<string, string[]>;
  extra?: (fields: FieldOption[]) => ExtraOption[];
  /** Which log lines to print while following (default: all). */
  show?: (line: LogLine) => boolean;
  /** Prints the completed task's outcome (default: its stats). */
  report?: (task: TaskView) => void;
}

/**
 * Where a kind's tasks are created, as src/http/routes registers them: every preprocessing kind
 * with a route under /api/v2/preprocessing (preprocessing.ts); training, inference and
 * evaluation at /api/v2/<family>/start, with the device fields (model-tasks.ts). A kind the API
 * has no creation route for gets no command.
 */
/** Where a kind is created over HTTP: the registry's own rule (jobs/job.ts creationRoute). */
export function creationRoute(job: JobSchema): { path: string; withDevice: boolean } | null {
  const at = jobCreationRoute(job);
  if (!at) return null;
  return { path: `/api/v2/${at.family}/${at.route}`, withDevice: job.resourceClass !== 'preprocessing' };
}

function withAliases(fields: FieldOption[], aliases: Record<string, string[]> = {}): FieldOption[] {
  return fields.map((o) => (aliases[o.field] ? { ...o, aliases: aliases[o.field] } : o));
}

const FOLLOW: Option = {
  name: 'follow',
  type: 'boolean',
  default: true,
  description: 'Follow the task until it ends (exit 0 only if it completed); --no-follow returns at once',
};

interface Submission {
  path: string;
  fields: FieldOption[];
  extras: ExtraOption[];
  entry: SubmitEntry;
}

function queuedLabel(task: TaskView): { progress: number; label: string } | undefined {
  if (task.status !== 'queued' && task.status !== 'pending') return undefined;
  return { progress: 0, label: `queued #${task.queue_position ?? '?'}: ${task.pending_reason ?? ''}` };
}

function requestBody(args: Args, s: Submission): Record<string, unknown> {
  const body = bodyFrom(s.fields, args.given);
  for (const x of s.extras) if (args.has(x.option.name)) x.apply(args.get(x.option.name), body);
  return body;
}

async function submit(args: Args, s: Submission): Promise<number> {
  const api = apiClient(args);
  const task = await api.request<TaskView>('POST', s.path, requestBody(args, s));
  process.stdout.write(`Submitted ${task.task_type} task ${task.task_id} (${task.status})\n`);
  if (!args.boolean('follow')) return 0;
  const final = await followTask(api, task.task_id, { show: s.entry.show, initial: queuedLabel(task) });
  if (final.status !== 'completed') return 1;
  const done = await api.request<TaskView>('GET', taskPath(task.task_id));
  if (s.entry.report) s.entry.report(done);
  else if (done.stats) process.stdout.write(`stats: ${JSON.stringify(done.stats)}\n`);
  return 0;
}

/** A command that creates a task: what it would send, as well as how it runs. */
export interface SubmitCommand extends Command {
  kind: string;
  /** POST here. */
  path: string;
  body(args: Args): Record<string, unknown>;
}

/** The command for one kind, or null when the API cannot create tasks of it. */
export function submitCommand(job: JobSchema, entry: SubmitEntry = { kind: job.kind }): SubmitCommand | null {
  const route = creationRoute(job);
  if (!route) return null;
  const own = withAliases(schemaOptions(job.body), entry.aliases);
  const common: TObject = Type.Object({ ...CommonTaskFields, ...(route.withDevice ? DeviceFields : {}) });
  // A field the kind declares itself (training's `name`) is listed with the kind's own.
  const task = withAliases(schemaOptions(common), entry.aliases).filter(
    (o) => !own.some((x) => x.field === o.field),
  );
  const extras = entry.extra?.(own) ?? [];
  const replaced = new Set(extras.map((x) => x.replaces));
  // An entry that names a field the schema no longer has would quietly lose a spelling.
  for (const field of [...Object.keys(entry.aliases ?? {}), ...replaced]) {
    if (field && ![...own, ...task].some((o) => o.field === field))
      throw new Error(`the '${job.kind}' command names a field its schema does not have: ${field}`);
  }
  const shown = own.filter((o) => !replaced.has(o.field));
  const submission: Submission = { path: route.path, fields: [...shown, ...task], extras, entry };
  return {
    name: entry.name ?? job.route ?? job.kind,
    summary: entry.summary ?? queueSummary(job.kind),
    group: 'submit',
    options: [
      {
        title: `Options (the ${job.kind} request body, POST ${route.path})`,
        options: [...shown, ...extras.map((x) => x.option)],
      },
      { title: 'Task options', options: [...task, FOLLOW] },
      CLIENT_OPTIONS,
    ],
    kind: job.kind,
    path: route.path,
    body: (args) => requestBody(args, submission),
    run: (args) => submit(args, submission),
  };
}
