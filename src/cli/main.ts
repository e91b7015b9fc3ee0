/** `rfuav`: finds the command in the table, reads its options, runs it, maps errors to exit codes. */
import { ConfigError, loadConfig } from '../config.js';
import { builtinJobSchemas, InsecureListenError } from '../main.js';
import { IqFormatError } from '../signal/iq.js';
import { StoreLockedError } from '../store/store.js';
import { ApiError } from './client.js';
import { commandOptions, type Command } from './command.js';
import { commandTable } from './commands/index.js';
import { StreamLostError } from './follow.js';
import { commandHelp, generalHelp, synopsis } from './help.js';
import { parseArgs, requireOptions, UsageError, type Option } from './options.js';

const HELP: Option = { name: 'help', short: 'h', type: 'boolean' };

function positionals(c: Command, given: string[]): void {
  const p = c.positionals ?? { usage: '', min: 0, max: 0 };
  if (given.length < p.min || given.length > p.max) {
    throw new UsageError(
      p.max === 0
        ? `'${c.name}' takes no arguments (got '${given.join(' ')}')`
        : `'${c.name}' takes ${p.usage} (got ${given.length} argument${given.length === 1 ? '' : 's'})`,
    );
  }
}

async function dispatch(c: Command, argv: string[]): Promise<number> {
  try {
    const args = parseArgs(argv, [...commandOptions(c), HELP], c.name);
    if (args.boolean('help')) {
      process.stdout.write(commandHelp(c));
      return 0;
    }
    requireOptions(args);
    positionals(c, args.positionals);
    return await c.run(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`rfuav: ${err.message}\nUsage: ${synopsis(c)}   (rfuav ${c.name} --help)\n`);
    return 2;
  }
}

export async function main(argv: string[]): Promise<number> {
  const table = commandTable(builtinJobSchemas(loadConfig(process.env)));
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    const asked =
      name === 'help' && rest[0] !== undefined ? table.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write(asked ? commandHelp(asked) : generalHelp(table));
    return name ? 0 : 2;
  }
  const command = table.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`rfuav: unknown command '${name}'\n\n${generalHelp(table)}`);
    return 2;
  }
  return dispatch(command, rest);
}

/** Errors a user can act on, printed as one line; anything else is a bug and keeps its stack. */
function exitCodeFor(err: unknown): number | null {
  if (err instanceof ConfigError || err instanceof InsecureListenError || err instanceof StoreLockedError)
    return 2;
  if (err instanceof ApiError || err instanceof StreamLostError) return 1;
  // Local commands (synth, noise, predict's file): a bad argument or file, not a bug.
  const code = (err as { code?: string }).code ?? '';
  if (err instanceof RangeError || err instanceof IqFormatError) return 1;
  if (['ENOENT', 'EACCES', 'EISDIR', 'ENOTDIR', 'ENOSPC', 'EEXIST'].includes(code)) return 1;
  return null;
}

export async function run(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (err) {
    const code = exitCodeFor(err);
    const text = code === null ? ((err as Error).stack ?? String(err)) : (err as Error).message;
    process.stderr.write(`rfuav: ${text}\n`);
    process.exitCode = code ?? 1;
  }
}
