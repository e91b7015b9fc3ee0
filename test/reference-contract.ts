/**
 * The reference service's response shapes (RFUAV Model Service V2.x: its models/schemas.py,
 * api/routers/*.py and services/*.py, as issue 12 records them), written here as JSON Schema
 * independently of this service's own schemas. Extra fields are allowed (we keep ours); every
 * field the reference's clients read must be there with the reference's type.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import Ajv from 'ajv';

const Open = <T extends Record<string, TSchema>>(props: T) =>
  Type.Object(props, { additionalProperties: true });
const Nullable = (t: TSchema) => Type.Union([t, Type.Null()]);
const OptNum = Type.Optional(Nullable(Type.Number()));

export const TrainingMetrics = Open({
  epoch: Type.Optional(Type.Integer()),
  total_epochs: Type.Optional(Type.Integer()),
  train_loss: OptNum,
  train_acc: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  val_loss: OptNum,
  val_acc: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  macro_f1: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  micro_f1: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  mAP: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top1_acc: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  top3_acc: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  top5_acc: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  macro_precision: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  macro_recall: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  micro_precision: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  micro_recall: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  precision: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  recall: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  learning_rate: OptNum,
  best_acc: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
});

export const TaskResponse = Open({
  task_id: Type.String(),
  task_type: Type.String(),
  status: Type.Union(
    ['pending', 'queued', 'running', 'completed', 'failed', 'cancelled'].map((s) => Type.Literal(s)),
  ),
  message: Type.Optional(Nullable(Type.String())),
  progress: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 100 }))),
  device: Type.Optional(Nullable(Type.String())),
  priority: Type.Optional(Nullable(Type.Integer())),
  created_at: Type.String(),
  updated_at: Type.String(),
  current_epoch: Type.Optional(Nullable(Type.Integer())),
  total_epochs: Type.Optional(Nullable(Type.Integer())),
  latest_metrics: Type.Optional(Nullable(TrainingMetrics)),
});

export const PreprocessingResponse = Open({
  task_id: Type.String(),
  task_type: Type.String(),
  status: Type.String(),
  message: Type.Optional(Nullable(Type.String())),
  progress: Type.Integer(),
  input_path: Type.Optional(Nullable(Type.String())),
  output_path: Type.Optional(Nullable(Type.String())),
  stats: Type.Optional(Nullable(Open({}))),
  created_at: Type.String(),
  updated_at: Type.String(),
});

export const TaskListResponse = Open({
  training_tasks: Type.Array(TaskResponse),
  inference_tasks: Type.Array(TaskResponse),
  total_training: Type.Integer(),
  total_inference: Type.Integer(),
});

export const HealthResponse = Open({
  status: Type.String(),
  timestamp: Type.String(),
  version: Type.String(),
  training_tasks: Type.Integer(),
  inference_tasks: Type.Integer(),
  active_log_streams: Type.Integer(),
  resource_status: Open({}),
});

export const InfoResponse = Open({
  app_name: Type.String(),
  version: Type.String(),
  environment: Type.String(),
  supported_models: Type.Array(Type.String()),
  resource_limits: Open({}),
  gpu_available: Type.Boolean(),
});

const ClassCounts = Type.Record(Type.String(), Type.Integer());

export const GpuDevice = Open({
  id: Type.Integer(),
  device_name: Type.String({ pattern: '^cuda:\\d+$' }),
  name: Type.String(),
  compute_capability: Nullable(Type.String({ pattern: '^\\d+\\.\\d+$' })),
  total_memory_gb: Type.Number(),
  allocated_memory_gb: Type.Number(),
  cached_memory_gb: Type.Number(),
  free_memory_gb: Type.Number(),
  utilization: Type.Number(),
  current_tasks: Type.Object({ training: Type.Integer(), inference: Type.Integer() }),
});

export const GpuInfo = Open({
  available: Type.Boolean(),
  count: Type.Integer(),
  devices: Type.Array(GpuDevice),
  cuda_version: Nullable(Type.String()),
  pytorch_version: Nullable(Type.String()),
});

export const ResourceStatusResponse = Open({
  device_usage: Type.Record(Type.String(), ClassCounts),
  active_tasks: Type.Record(Type.String(), Type.Array(Open({}))),
  limits: Type.Record(Type.String(), ClassCounts),
  gpu_info: GpuInfo,
});

export const CpuInfo = Open({
  percent: Type.Number(),
  per_cpu_percent: Type.Array(Type.Number()),
  cores: Type.Integer(),
  physical_cores: Type.Integer(),
  freq_mhz: Nullable(Type.Number()),
  load_avg: Nullable(
    Type.Object({
      '1': Nullable(Type.Number()),
      '5': Nullable(Type.Number()),
      '15': Nullable(Type.Number()),
    }),
  ),
  memory_percent: Type.Number(),
});

export const ErrorResponse = Open({
  status: Type.Literal('error'),
  message: Type.String(),
  timestamp: Type.String(),
  detail: Type.String(),
});

export const TaskActionResponse = Open({
  status: Type.String(),
  message: Type.String(),
  task_id: Type.String(),
});

export const BatchInferenceResponse = Open({
  status: Type.String(),
  message: Type.String(),
  task_ids: Type.Array(Type.String()),
  total: Type.Integer(),
});

export const ConfigUpdateResponse = Open({
  status: Type.String(),
  message: Type.String(),
  current_config: Open({}),
});

export const DetailedLogEntry = Open({
  timestamp: Type.String(),
  level: Type.Union(['DEBUG', 'INFO', 'WARNING', 'ERROR'].map((l) => Type.Literal(l))),
  message: Type.String(),
  metrics: Type.Optional(Nullable(TrainingMetrics)),
  step: Type.Optional(Nullable(Type.Integer())),
  stage: Type.Optional(
    Nullable(
      Type.Union(
        ['epoch_start', 'training', 'validation', 'epoch_end', 'completed'].map((s) => Type.Literal(s)),
      ),
    ),
  ),
});

export const SplitStats = Open({
  total_images: Type.Integer(),
  train_images: Type.Integer(),
  val_images: Type.Integer(),
  test_images: Type.Integer(),
  classes: Type.Array(Type.String()),
});

export const AugmentStats = Open({
  original_images: Type.Integer(),
  augmented_images: Type.Integer(),
  methods_used: Type.Integer(),
  classes: Type.Array(Type.String()),
});

export const CropStats = Open({
  total_images: Type.Integer(),
  success: Type.Integer(),
  failed: Type.Integer(),
});

const ajv = new Ajv.default({ allErrors: true, strict: false });
const compiled = new WeakMap<TSchema, ReturnType<typeof ajv.compile>>();

/** Throws, naming every mismatch, unless `value` has the reference's shape `schema`. */
export function assertShape(schema: TSchema, value: unknown, what: string): void {
  let check = compiled.get(schema);
  if (!check) compiled.set(schema, (check = ajv.compile(schema)));
  if (!check(value)) {
    const issues = (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ');
    throw new Error(
      `${what} does not have the reference's shape: ${issues}\n${JSON.stringify(value).slice(0, 2000)}`,
    );
  }
}
