/**
 * Command-line options as the command table declares them, and the one parser that reads them:
 * typed values (integers, numbers, booleans with --no-x, enums, comma lists), long aliases, and
 * negative numbers as values (`--snr -5`, `--ratio -1`).
 */

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionType = 'string' | 'integer' | 'number' | 'boolean' | 'json';

export interface Option {
  /** The flag without its dashes, e.g. "train-ratio". */
  name: string;
  type: OptionType;
  /** Comma-separated values of `type` (`--methods a,b`, `--snr 0,10`). */
  list?: boolean;
  /** The values a string option may take. */
  enum?: readonly string[];
  /** Shown in --help; a command reads it through `Args` (a submitted body leaves it to the server). */
  default?: unknown;
  description?: string;
  required?: boolean;
  /** Other long spellings, e.g. "train" for "train-path". */
  aliases?: string[];
  /** One letter, e.g. "f" for -f. */
  short?: string;
  /** What --help shows for the value (default: from the type). */
  placeholder?: string;
  /** Bounds as --help shows them, e.g. "0.1 to 0.9" (the server checks them). */
  bounds?: string;
}

type Value = string | number | boolean | unknown[] | Record<string, unknown>;

/** What a command line gave: values under each option's name, and the positional arguments. */
export class Args {
  constructor(
    readonly options: Option[],
    /** Only what the command line gave, by option name. */
    readonly given: Map<string, Value>,
    readonly positionals: string[],
  ) {}

  has(name: string): boolean {
    return this.given.has(name);
  }

  /** The given value, else the option's declared default. */
  get(name: string): Value | undefined {
    return this.given.get(name) ?? (this.options.find((o) => o.name === name)?.default as Value | undefined);
  }

  string(name: string): string | undefined {
    const v = this.get(name);
    return v === undefined ? undefined : String(v);
  }

  number(name: string): number | undefined {
    const v = this.get(name);
    return typeof v === 'number' ? v : undefined;
  }

  boolean(name: string): boolean {
    return this.get(name) === true;
  }

  numbers(name: string): number[] | undefined {
    const v = this.get(name);
    return Array.isArray(v) ? v.map(Number) : undefined;
  }
}

/** `--name` and its aliases as help and error messages write them. */
export function spellings(o: Option): string {
  return [o.name, ...(o.aliases ?? [])].map((n) => `--${n}`).join('/');
}

function convert(o: Option, raw: string, flag: string): Value {
  if (o.list) {
    const items = raw
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '');
    if (items.length === 0) throw new UsageError(`${flag} needs at least one value`);
    return items.map((x) => scalar(o, x, flag, true));
  }
  return scalar(o, raw, flag, false);
}

function scalar(o: Option, raw: string, flag: string, inList: boolean): Value {
  if (o.type === 'integer' || o.type === 'number') {
    const n = raw.trim() === '' ? NaN : Number(raw);
    const ok = o.type === 'integer' ? Number.isInteger(n) : Number.isFinite(n);
    const what = inList
      ? `a comma-separated list of ${o.type}s`
      : o.type === 'integer'
        ? 'an integer'
        : 'a number';
    if (!ok) throw new UsageError(`${flag} must be ${what} (got '${raw}')`);
    return n;
  }
  if (o.type === 'boolean') {
    if (raw === 'true' || raw === 'false') return raw === 'true';
    throw new UsageError(`${flag} takes no value, or =true/=false (got '${raw}')`);
  }
  if (o.type === 'json') {
    try {
      return JSON.parse(raw) as Value;
    } catch {
      throw new UsageError(`${flag} must be JSON (got '${raw}')`);
    }
  }
  if (o.enum && !o.enum.includes(raw))
    throw new UsageError(`${flag} must be one of ${o.enum.join(', ')} (got '${raw}')`);
  return raw;
}

/** Finds the option a flag names: its name, an alias, or --no-<boolean>. */
function lookup(options: Option[], name: string): { option: Option; negated: boolean } | undefined {
  for (const option of options) {
    const names = [option.name, ...(option.aliases ?? [])];
    if (names.includes(name)) return { option, negated: false };
    if (option.type === 'boolean' && names.some((n) => `no-${n}` === name)) return { option, negated: true };
  }
  return undefined;
}

/** A word after a value-taking flag is its value unless it is a flag itself (a negative number is not). */
function isFlag(word: string | undefined, options: Option[]): boolean {
  if (word === undefined) return true;
  if (word.startsWith('--')) return true;
  return /^-[A-Za-z]$/.test(word) && options.some((o) => o.short === word.slice(1));
}

/**
 * Reads `argv` against `options`. Checks types and enums, not presence: `requireOptions` does
 * that once the command knows it is not asked for --help.
 */
export function parseArgs(argv: string[], options: Option[], command: string): Args {
  const given = new Map<string, Value>();
  const positionals: string[] = [];
  const unknown = (flag: string) =>
    new UsageError(`unknown option ${flag} for '${command}' (rfuav ${command} --help lists them)`);
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (/^-[A-Za-z]$/.test(word)) {
      const option = options.find((o) => o.short === word.slice(1));
      if (!option) throw unknown(word);
      if (option.type !== 'boolean') {
        const next = argv[i + 1];
        if (isFlag(next, options)) throw new UsageError(`${word} needs a value`);
        given.set(option.name, convert(option, next as string, word));
        i++;
      } else given.set(option.name, true);
      continue;
    }
    if (!word.startsWith('--') || word.length === 2) {
      positionals.push(word);
      continue;
    }
    const eq = word.indexOf('=');
    const name = word.slice(2, eq < 0 ? undefined : eq);
    const found = lookup(options, name);
    if (!found) throw unknown(`--${name}`);
    const { option, negated } = found;
    const flag = `--${name}`;
    if (option.type === 'boolean') {
      const value = eq < 0 ? true : (convert(option, word.slice(eq + 1), flag) as boolean);
      given.set(option.name, negated ? !value : value);
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = word.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (isFlag(next, options)) throw new UsageError(`${flag} needs a value`);
      raw = next as string;
      i++;
    }
    given.set(option.name, convert(option, raw, flag));
  }
  return new Args(options, given, positionals);
}

/** Fails on the first required option the command line left out. */
export function requireOptions(args: Args): void {
  for (const o of args.options) {
    if (o.required && !args.has(o.name)) throw new UsageError(`${spellings(o)} is required`);
  }
}
