/** What a command of the table is, and what every client command shares. */
import { ApiClient } from './client.js';
import type { Args, Option } from './options.js';

export type CommandGroup = 'server' | 'tasks' | 'submit' | 'local';

export interface OptionGroup {
  /** The heading --help prints above them, e.g. "Task options". */
  title: string;
  options: Option[];
}

export interface Command {
  name: string;
  /** One line for `rfuav help`. */
  summary: string;
  group: CommandGroup;
  /** Positional arguments: how --help writes them, and how many the command takes. */
  positionals?: { usage: string; min: number; max: number };
  options: OptionGroup[];
  /** Lines --help prints after the options. */
  notes?: string[];
  /** Runs with the parsed command line (required options checked); resolves with the exit code. */
  run(args: Args): Promise<number>;
}

/** Every option of a command, whatever its group. */
export function commandOptions(c: Command): Option[] {
  return c.options.flatMap((g) => g.options);
}

/** --server and --token: every command that talks to a running service. */
export const CLIENT_OPTIONS: OptionGroup = {
  title: 'Connection',
  options: [
    {
      name: 'server',
      type: 'string',
      placeholder: 'URL',
      description: 'Service address ($RFUAV_SERVER, else http://127.0.0.1:8000)',
    },
    {
      name: 'token',
      type: 'string',
      placeholder: 'T',
      description: 'Bearer token ($RFUAV_TOKEN, else the first of $RFUAV_API_TOKENS)',
    },
  ],
};

export function apiClient(args: Args, env: NodeJS.ProcessEnv = process.env): ApiClient {
  return new ApiClient({
    server: args.string('server') ?? env.RFUAV_SERVER ?? 'http://127.0.0.1:8000',
    // On the server's own machine the service's token list is often in the environment already.
    token: args.string('token') || env.RFUAV_TOKEN || firstToken(env.RFUAV_API_TOKENS) || undefined,
  });
}

export function taskPath(id: string, rest = ''): string {
  return `/api/v2/tasks/${encodeURIComponent(id)}${rest}`;
}

/** The first token of a RFUAV_API_TOKENS list, without its user's name (`alice:tok` → `tok`). */
function firstToken(list: string | undefined): string | undefined {
  const first = list?.split(',')[0]?.trim();
  const m = first ? /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}:(.+)$/.exec(first) : null;
  return m ? m[1] : first;
}
