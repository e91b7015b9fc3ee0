/**
 * Task kinds and statuses. Pure: no I/O. Status moves only forward (pending → queued → running →
 * completed | failed | cancelled), except running → queued when a restart or shutdown re-queues
 * work; every move is a compare-and-set on the current status (Store.updateTask's fromStatuses).
 */

/**
 * A task kind's name (`task_type`), e.g. "training" or "dataset_split". The job registry built
 * in main.ts is the one list of kinds; nothing restates it here.
 */
export type TaskKind = string;

export const RESOURCE_CLASSES = ['training', 'inference', 'preprocessing'] as const;
export type ResourceClass = (typeof RESOURCE_CLASSES)[number];

export const TASK_STATUSES = ['pending', 'queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'cancelled']);

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

export const DEFAULT_PRIORITY: Record<ResourceClass, number> = {
  training: 5,
  inference: 3,
  preprocessing: 5,
};

/** Which list of the reference's `GET /api/v2/tasks` shape a kind belongs to. */
export function listGroupOf(kind: TaskKind): 'training' | 'inference' | 'other' {
  if (kind === 'training') return 'training';
  if (kind === 'inference') return 'inference';
  return 'other';
}

/** Fields stored for every task. JSON-valued columns are parsed objects here. */
export interface TaskRecord {
  task_id: string;
  task_type: TaskKind;
  status: TaskStatus;
  priority: number;
  /** What the client asked for: cpu, cuda, cuda:N, auto (null for CPU-only kinds). */
  device_request: string | null;
  /** The device the task was placed on (set when it starts). */
  device: string | null;
  gpu_memory_gb: number | null;
  name: string | null;
  description: string | null;
  message: string | null;
  progress: number;
  attempts: number;
  params: Record<string, unknown>;
  input_path: string | null;
  output_path: string | null;
  stats: Record<string, unknown> | null;
  result: Record<string, unknown> | null;
  error: string | null;
  current_epoch: number | null;
  total_epochs: number | null;
  latest_metrics: Record<string, unknown> | null;
  created_at: string;
  updated_at: string;
  /** When the task last entered the queue; its place in the queue is derived from this. */
  enqueued_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** In a cluster: the name of the node that runs (or ran) the task, and its node id. */
  node?: string | null;
  node_id?: string | null;
  /** In a cluster: the node the task was pinned to at submission (its `node` field), if any. */
  pinned_node?: string | null;
  /** The user who submitted it (null: created before users existed). */
  owner: string | null;
}

export type NewTask = Pick<
  TaskRecord,
  | 'task_id'
  | 'task_type'
  | 'priority'
  | 'device_request'
  | 'gpu_memory_gb'
  | 'name'
  | 'description'
  | 'params'
  | 'input_path'
  | 'output_path'
  | 'total_epochs'
> & {
  message?: string | null;
  /** Who submits it (the local user when no tokens are configured). */
  owner?: string | null;
  /**
   * `pending` (accepted, not yet in a node's queue) or `queued`. A single node queues a task in
   * the same step that accepts it, so it stores `queued` directly; `pending` is for a shared
   * queue where acceptance and queueing happen on different nodes.
   */
  status?: 'pending' | 'queued';
  /** In a cluster: only the node of this name may claim it. */
  pin_node?: string | null;
};

export type TaskPatch = Partial<
  Pick<
    TaskRecord,
    | 'status'
    | 'device'
    | 'message'
    | 'progress'
    | 'attempts'
    | 'stats'
    | 'result'
    | 'error'
    | 'current_epoch'
    | 'total_epochs'
    | 'latest_metrics'
    | 'enqueued_at'
    | 'started_at'
    | 'finished_at'
  >
>;

export const TASK_ID_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';

/** A cluster node's name (RFUAV_NODE_NAME), as a task's `node` field names it. */
export const NODE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';

/** Task log levels, spelled as the reference writes them (Python logging's level names). */
export const LOG_LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A level from elsewhere (the runner's events, rows written before levels were upper case,
 * Python's 'warn'/'critical') as a LogLevel; anything unknown is INFO.
 */
export function toLogLevel(value: unknown): LogLevel {
  const up = typeof value === 'string' ? value.toUpperCase() : '';
  if (up === 'WARN') return 'WARNING';
  if (up === 'CRITICAL' || up === 'FATAL') return 'ERROR';
  return (LOG_LEVELS as readonly string[]).includes(up) ? (up as LogLevel) : 'INFO';
}

export interface LogEntry {
  seq: number;
  timestamp: string;
  level: LogLevel;
  message: string;
  metrics?: Record<string, unknown> | null;
  step?: number | null;
  stage?: string | null;
  /**
   * Set on a progress event (percent 0–100, `message` the work's own words or empty): stored and
   * numbered like every entry, so an SSE stream replays it, and sent as `event: progress`.
   */
  progress?: number | null;
}

export type NewLogEntry = Omit<LogEntry, 'seq' | 'timestamp'> & { timestamp?: string };

/** What a log line may carry besides its level and message. */
export type LogExtra = Pick<NewLogEntry, 'stage' | 'step' | 'metrics' | 'progress'>;

export interface EpochMetrics {
  epoch: number;
  [key: string]: unknown;
}
