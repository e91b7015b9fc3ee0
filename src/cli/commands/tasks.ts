import { TASK_STATUSES } from '../../domain/task.js';
import { apiClient, CLIENT_OPTIONS, type Command } from '../command.js';
import { table, type TaskView } from '../format.js';

interface TaskList {
  training_tasks: TaskView[];
  inference_tasks: TaskView[];
  other_tasks: TaskView[];
  total_training: number;
  total_inference: number;
  total_other: number;
}

function row(t: TaskView): string[] {
  const msg =
    t.status === 'queued' || t.status === 'pending'
      ? `#${t.queue_position ?? '?'} ${t.pending_reason ?? ''}`
      : (t.error ?? t.message ?? '');
  return [
    t.task_id,
    t.task_type,
    t.status,
    `${t.progress}%`,
    t.device ?? '-',
    String(t.priority),
    msg.slice(0, 80),
  ];
}

/** `rfuav tasks`: the newest tasks of every kind, one line each. */
export const tasksCommand: Command = {
  name: 'tasks',
  summary: 'List tasks, newest first',
  group: 'tasks',
  options: [
    {
      title: 'Options',
      options: [
        { name: 'status', type: 'string', enum: TASK_STATUSES, description: 'Only tasks in this status' },
        {
          name: 'type',
          type: 'string',
          placeholder: 'KIND',
          description: 'Only tasks of this kind (task_type)',
        },
        { name: 'limit', type: 'integer', placeholder: 'N', default: 50 },
        { name: 'json', type: 'boolean', description: 'The API answer as it is' },
      ],
    },
    CLIENT_OPTIONS,
  ],
  async run(args) {
    const q = new URLSearchParams();
    const status = args.string('status');
    const type = args.string('type');
    if (status) q.set('status', status);
    if (type) q.set('task_type', type);
    q.set('limit', String(args.number('limit')));
    const res = await apiClient(args).request<TaskList>('GET', `/api/v2/tasks?${q}`);
    if (args.boolean('json')) {
      process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
      return 0;
    }
    const all = [...res.training_tasks, ...res.inference_tasks, ...res.other_tasks].sort((a, b) =>
      b.created_at.localeCompare(a.created_at),
    );
    const rows = [['TASK_ID', 'TYPE', 'STATUS', 'PROGRESS', 'DEVICE', 'PRI', 'MESSAGE'], ...all.map(row)];
    process.stdout.write(`${table(rows)}\n`);
    process.stdout.write(
      `training ${res.total_training}, inference ${res.total_inference}, other ${res.total_other}\n`,
    );
    return 0;
  },
};
