import { toLogLevel, type LogEntry, type NewLogEntry, type TaskRecord } from '../domain/task.js';
import type { QuotaOverride } from '../domain/users.js';

/** Row shape shared by the SQL stores: JSON columns as text. */
export interface TaskRow {
  task_id: string;
  task_type: string;
  status: string;
  priority: number;
  device_request: string | null;
  device: string | null;
  gpu_memory_gb: number | null;
  name: string | null;
  description: string | null;
  message: string | null;
  progress: number;
  attempts: number;
  params: string;
  input_path: string | null;
  output_path: string | null;
  stats: string | null;
  result: string | null;
  error: string | null;
  current_epoch: number | null;
  total_epochs: number | null;
  latest_metrics: string | null;
  created_at: string;
  updated_at: string;
  enqueued_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** PostgreSQL only: the claiming node. */
  owner_node?: string | null;
  node_name?: string | null;
  pin_node?: string | null;
  owner: string | null;
}

export const JSON_COLUMNS = new Set(['params', 'stats', 'result', 'latest_metrics']);

function parseJson<T>(text: string | null): T | null {
  return text == null ? null : (JSON.parse(text) as T);
}

export function rowToTask(row: TaskRow): TaskRecord {
  return {
    task_id: row.task_id,
    task_type: row.task_type as TaskRecord['task_type'],
    status: row.status as TaskRecord['status'],
    priority: row.priority,
    device_request: row.device_request,
    device: row.device,
    gpu_memory_gb: row.gpu_memory_gb,
    name: row.name,
    description: row.description,
    message: row.message,
    progress: row.progress,
    attempts: row.attempts,
    params: parseJson<Record<string, unknown>>(row.params) ?? {},
    input_path: row.input_path,
    output_path: row.output_path,
    stats: parseJson(row.stats),
    result: parseJson(row.result),
    error: row.error,
    current_epoch: row.current_epoch,
    total_epochs: row.total_epochs,
    latest_metrics: parseJson(row.latest_metrics),
    created_at: row.created_at,
    updated_at: row.updated_at,
    enqueued_at: row.enqueued_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    owner: row.owner ?? null,
    ...(row.node_name !== undefined
      ? { node: row.node_name, node_id: row.owner_node ?? null, pinned_node: row.pin_node ?? null }
      : {}),
  };
}

export interface LogRow {
  seq: number;
  timestamp: string;
  level: string;
  message: string;
  metrics: string | null;
  step: number | null;
  stage: string | null;
  progress: number | null;
}

export function rowToLog(row: LogRow): LogEntry {
  const entry: LogEntry = {
    seq: row.seq,
    timestamp: row.timestamp,
    // Rows written before levels were upper case read as the reference spells them.
    level: toLogLevel(row.level),
    message: row.message,
  };
  if (row.metrics != null) entry.metrics = JSON.parse(row.metrics) as Record<string, unknown>;
  if (row.step != null) entry.step = row.step;
  if (row.stage != null) entry.stage = row.stage;
  if (row.progress != null) entry.progress = row.progress;
  return entry;
}

/** The entry an append wrote, as a read would return it (absent fields left out). */
export function appendedLog(seq: number, timestamp: string, entry: NewLogEntry): LogEntry {
  const out: LogEntry = { seq, timestamp, level: entry.level, message: entry.message };
  if (entry.metrics != null) out.metrics = entry.metrics;
  if (entry.step != null) out.step = entry.step;
  if (entry.stage != null) out.stage = entry.stage;
  if (entry.progress != null) out.progress = entry.progress;
  return out;
}

/** Serialises a patch value for a SQL column. */
export function columnValue(column: string, value: unknown): unknown {
  if (JSON_COLUMNS.has(column)) return value == null ? null : JSON.stringify(value);
  return value;
}

export interface QuotaRow {
  user_name: string;
  quotas: string;
}

/** The stored quota overrides, by user. */
export function quotaOverrides(rows: readonly QuotaRow[]): Record<string, QuotaOverride> {
  const out: Record<string, QuotaOverride> = {};
  for (const r of rows) out[r.user_name] = JSON.parse(r.quotas) as QuotaOverride;
  return out;
}
