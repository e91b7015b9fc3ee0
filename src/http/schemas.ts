import { Type, type TObject, type TProperties } from '@sinclair/typebox';
import { NODE_NAME_PATTERN, TASK_ID_PATTERN, TASK_STATUSES } from '../domain/task.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

/**
 * Nullable scalars for response schemas in the OpenAPI 3.0 style (`nullable: true`), which
 * fast-json-stringify serialises directly; an anyOf union costs it ~50% more per task object.
 */
const Maybe = {
  string: () => Type.Unsafe<string | null>({ type: 'string', nullable: true }),
  integer: () => Type.Unsafe<number | null>({ type: 'integer', nullable: true }),
  number: () => Type.Unsafe<number | null>({ type: 'number', nullable: true }),
};

export const ErrorSchema = Type.Object(
  {
    status: Type.Literal('error'),
    message: Type.String(),
    detail: Type.String({ description: 'Human-readable, as FastAPI’s HTTPException detail' }),
    field: Type.Optional(Type.String({ description: 'The request field the error concerns' })),
    timestamp: Type.String(),
  },
  { additionalProperties: true },
);

/** Fields every task-creating request accepts, whatever its kind. */
export const CommonTaskFields = {
  task_id: Type.Optional(
    Type.String({
      pattern: TASK_ID_PATTERN,
      description: 'Client-chosen id; must be unused. Default: a UUID.',
    }),
  ),
  priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: '1 is most urgent' })),
  name: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  description: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))),
  node: Type.Optional(
    Type.String({
      pattern: NODE_NAME_PATTERN,
      description:
        'In a cluster: run only on the node of this name (cuda:N then means that node’s GPU N). 422 when no such node is registered.',
    }),
  ),
};

/** Fields of kinds that run on GPUs or CPUs. */
export const DeviceFields = {
  device: Type.Optional(
    Type.String({ pattern: '^(cpu|cuda|auto|cuda:[0-9]{1,3})$', description: 'cpu, cuda, cuda:N or auto' }),
  ),
  gpu_memory_gb: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 4096 })),
};

export function taskBody(own: TObject, withDevice: boolean): TObject {
  const props: TProperties = { ...own.properties, ...CommonTaskFields, ...(withDevice ? DeviceFields : {}) };
  return Type.Object(props, { additionalProperties: false });
}

export const TaskSchema = Type.Object(
  {
    task_id: Type.String(),
    task_type: Type.String(),
    status: Type.Union(TASK_STATUSES.map((s) => Type.Literal(s))),
    message: Maybe.string(),
    progress: Type.Integer(),
    device: Maybe.string(),
    device_request: Maybe.string(),
    priority: Type.Integer(),
    effective_priority: Type.Optional(Type.Integer()),
    created_at: Type.String(),
    updated_at: Type.String(),
    started_at: Maybe.string(),
    finished_at: Maybe.string(),
    name: Maybe.string(),
    description: Maybe.string(),
    queue_position: Type.Optional(Type.Integer()),
    pending_reason: Type.Optional(Type.String()),
    // In a cluster: the name of the node that runs or ran the task, and its id.
    node: Type.Optional(Maybe.string()),
    node_id: Type.Optional(Maybe.string()),
    pinned_node: Type.Optional(Maybe.string()),
    // The user who submitted it (null: created before users existed).
    owner: Maybe.string(),
    attempts: Type.Integer(),
    gpu_memory_gb: Maybe.number(),
    current_epoch: Maybe.integer(),
    total_epochs: Maybe.integer(),
    latest_metrics: Type.Unknown(),
    input_path: Maybe.string(),
    output_path: Maybe.string(),
    stats: Type.Unknown(),
    result: Type.Unknown(),
    error: Maybe.string(),
    parameters: Type.Unknown(),
  },
  // Closed on purpose: fast-json-stringify serialises a closed object several times faster.
  // A new task field must be added here to reach clients.
  { additionalProperties: false },
);

export const TaskIdParams = Type.Object({ task_id: Type.String({ maxLength: 200 }) });

export const ActionResult = Type.Object({
  status: Type.Literal('success'),
  message: Type.String(),
  task_id: Type.String(),
});

export const LogQuery = Type.Object({
  since: Type.Optional(
    Type.Integer({ minimum: 0, description: 'Replay entries after this sequence number' }),
  ),
  follow: Type.Boolean({ default: true, description: 'false: replay the history and close' }),
});
