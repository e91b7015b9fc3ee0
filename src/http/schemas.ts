import { Type, type TObject, type TProperties } from '@sinclair/typebox';
import { TASK_ID_PATTERN, TASK_STATUSES } from '../domain/task.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const ErrorSchema = Type.Object(
  {
    status: Type.Literal('error'),
    message: Type.String(),
    detail: Type.Unknown(),
    timestamp: Type.String(),
  },
  {},
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
    message: Type.Union([Type.String(), Type.Null()]),
    progress: Type.Integer(),
    device: Type.Union([Type.String(), Type.Null()]),
    device_request: Type.Union([Type.String(), Type.Null()]),
    priority: Type.Integer(),
    effective_priority: Type.Optional(Type.Integer()),
    created_at: Type.String(),
    updated_at: Type.String(),
    started_at: Type.Union([Type.String(), Type.Null()]),
    finished_at: Type.Union([Type.String(), Type.Null()]),
    name: Type.Union([Type.String(), Type.Null()]),
    description: Type.Union([Type.String(), Type.Null()]),
    queue_position: Type.Optional(Type.Integer()),
    pending_reason: Type.Optional(Type.String()),
    attempts: Type.Integer(),
    gpu_memory_gb: Type.Union([Type.Number(), Type.Null()]),
    current_epoch: Type.Union([Type.Integer(), Type.Null()]),
    total_epochs: Type.Union([Type.Integer(), Type.Null()]),
    latest_metrics: Type.Unknown(),
    input_path: Type.Union([Type.String(), Type.Null()]),
    output_path: Type.Union([Type.String(), Type.Null()]),
    stats: Type.Unknown(),
    result: Type.Unknown(),
    error: Type.Union([Type.String(), Type.Null()]),
    parameters: Type.Unknown(),
  },
  { additionalProperties: true },
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
