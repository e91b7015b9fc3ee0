import { RESOURCE_CLASSES } from '../../domain/task.js';
import { apiClient, CLIENT_OPTIONS, type Command } from '../command.js';
import { table } from '../format.js';
import { UsageError, type Args } from '../options.js';

interface Quotas {
  queued?: number;
  running?: Record<string, number>;
  gpu_hours_per_day?: number;
}

interface UserView {
  name: string;
  role: string;
  share: number;
  quotas: Quotas;
  queued: number;
  running: number;
  usage: number;
  fair_share: number;
}

/** Quotas in one cell: `queued 50, training 2, 8 GPU-h/day`; `-` when none. */
function quotaText(q: Quotas): string {
  const parts = [
    ...(q.queued === undefined ? [] : [`queued ${q.queued}`]),
    ...Object.entries(q.running ?? {}).map(([cls, n]) => `${cls} ${n}`),
    ...(q.gpu_hours_per_day === undefined ? [] : [`${q.gpu_hours_per_day} GPU-h/day`]),
  ];
  return parts.join(', ') || '-';
}

/** A quota value from the command line: a number, or `none` to lift the quota (null). */
function quotaValue(text: string, flag: string, whole: boolean): number | null {
  if (text === 'none') return null;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || (whole && !Number.isInteger(n)))
    throw new UsageError(
      `${flag} takes ${whole ? 'a whole number' : 'a number'} ≥ 0, or none (got '${text}')`,
    );
  return n;
}

/** The request body of a quota change, from --queued, --running and --gpu-hours. */
function quotaChange(args: Args): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const queued = args.string('queued');
  if (queued !== undefined) body.queued = quotaValue(queued, '--queued', true);
  const hours = args.string('gpu-hours');
  if (hours !== undefined) body.gpu_hours_per_day = quotaValue(hours, '--gpu-hours', false);
  const running = args.get('running') as string[] | undefined;
  if (running) {
    const per: Record<string, number | null> = {};
    for (const item of running) {
      const [cls, n] = item.split('=');
      if (!cls || n === undefined || !(RESOURCE_CLASSES as readonly string[]).includes(cls))
        throw new UsageError(
          `--running takes CLASS=N or CLASS=none, CLASS one of ${RESOURCE_CLASSES.join(', ')}`,
        );
      per[cls] = quotaValue(n, `--running ${cls}`, true);
    }
    body.running = per;
  }
  return body;
}

/**
 * `rfuav users`: the team (admins), and an admin's live change of one user's quotas:
 * `rfuav users bob --running training=2 --queued none`, or `--reset`.
 */
export const usersCommand: Command = {
  name: 'users',
  summary: "List users with their work and usage, or change a user's quotas (admins)",
  group: 'tasks',
  positionals: { usage: '[user]', min: 0, max: 1 },
  options: [
    {
      title: 'Quota changes (with a user; take effect at once, on every node)',
      options: [
        { name: 'queued', type: 'string', placeholder: 'N|none', description: 'Tasks waiting at once' },
        {
          name: 'running',
          type: 'string',
          list: true,
          placeholder: 'CLASS=N,…',
          description: `Tasks running at once per class (${RESOURCE_CLASSES.join(', ')}); N or none`,
        },
        { name: 'gpu-hours', type: 'string', placeholder: 'H|none', description: 'GPU-hours in any 24 h' },
        { name: 'reset', type: 'boolean', description: 'Drop the change: the configured quotas apply again' },
        { name: 'json', type: 'boolean', description: 'The API answer as it is' },
      ],
    },
    CLIENT_OPTIONS,
  ],
  notes: ['none lifts a quota (unlimited); quotas not named stay as they are.'],
  async run(args) {
    const client = apiClient(args);
    const name = args.positionals[0];
    const change = quotaChange(args);
    if (!name && (args.boolean('reset') || Object.keys(change).length > 0))
      throw new UsageError('name the user whose quotas to change: rfuav users <user> --queued 50');
    if (name && (args.boolean('reset') || Object.keys(change).length > 0)) {
      const path = `/api/v2/users/${encodeURIComponent(name)}/quotas`;
      const res = await client.request<{ quotas: Quotas; configured: Quotas }>(
        args.boolean('reset') ? 'DELETE' : 'POST',
        path,
        args.boolean('reset') ? undefined : change,
      );
      if (args.boolean('json')) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
      else
        process.stdout.write(
          `${name}: ${quotaText(res.quotas)} (configured: ${quotaText(res.configured)})\n`,
        );
      return 0;
    }
    const { users } = await client.request<{ users: UserView[] }>('GET', '/api/v2/users');
    const shown = name ? users.filter((u) => u.name === name) : users;
    if (name && shown.length === 0) throw new UsageError(`no user '${name}'`);
    if (args.boolean('json')) {
      process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
      return 0;
    }
    const rows = shown.map((u) => [
      u.name,
      u.role,
      String(u.share),
      String(u.queued),
      String(u.running),
      u.usage.toFixed(1),
      u.fair_share.toFixed(2),
      quotaText(u.quotas),
    ]);
    process.stdout.write(
      `${table([['USER', 'ROLE', 'SHARE', 'WAITING', 'RUNNING', 'USAGE', 'FAIR', 'QUOTAS'], ...rows])}\n`,
    );
    return 0;
  },
};
