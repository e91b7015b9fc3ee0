/** `rfuav help` and `rfuav <command> --help`, printed from the command table. */
import type { Command, CommandGroup } from './command.js';
import { compact } from './format.js';
import type { Option } from './options.js';

const WIDTH = 100;

const GROUPS: [CommandGroup, string][] = [
  ['server', 'Service'],
  ['tasks', 'Tasks'],
  ['submit', 'Submit a task (followed until it ends, with progress; --no-follow returns at once)'],
  ['local', 'Local (no server needed)'],
];

/** Words of `text` in lines of at most `width - indent` characters, each after `indent` spaces. */
function wrap(text: string, indent: number, width = WIDTH): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** Two columns: the left padded to the widest (up to a limit), the right wrapped beside it. */
function columns(rows: [string, string][], max = 34): string {
  const width = Math.min(max, Math.max(0, ...rows.map(([l]) => l.length)));
  const out: string[] = [];
  for (const [left, right] of rows) {
    const body = wrap(right, width + 4);
    if (left.length > width) {
      out.push(`  ${left}`);
      for (const l of body) out.push(`${' '.repeat(width + 4)}${l}`);
      continue;
    }
    out.push(`  ${left.padEnd(width)}  ${body[0] ?? ''}`.trimEnd());
    for (const l of body.slice(1)) out.push(`${' '.repeat(width + 4)}${l}`);
  }
  return out.join('\n');
}

function shownDefault(v: unknown): string {
  if (typeof v === 'number') return compact(v);
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'number' ? compact(x) : String(x))).join(',');
  if (v === '') return "''";
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** `--train-path, --train PATH` (a boolean that is on by default: `--[no-]shuffle`). */
function flagColumn(o: Option): string {
  const names = [o.name, ...(o.aliases ?? [])].map((n) =>
    o.type === 'boolean' && o.default === true ? `--[no-]${n}` : `--${n}`,
  );
  if (o.short) names.unshift(`-${o.short}`);
  return `${names.join(', ')}${o.placeholder ? ` ${o.placeholder}` : ''}`;
}

function describe(o: Option): string {
  const facts: string[] = [];
  if (o.required) facts.push('required');
  // An enum too long for the placeholder is listed here, unless the description lists it.
  const values = o.enum?.join(', ');
  if (values && o.placeholder !== o.enum?.join('|') && !o.description?.includes(values))
    facts.push(`one of ${values}`);
  if (o.bounds) facts.push(o.bounds);
  if (o.default !== undefined && o.type !== 'boolean') facts.push(`default ${shownDefault(o.default)}`);
  if (o.type === 'boolean' && o.default !== undefined) facts.push(`default ${o.default ? 'on' : 'off'}`);
  const text = o.description ?? '';
  return facts.length ? `${text}${text ? ' ' : ''}[${facts.join('; ')}]` : text;
}

/** `rfuav split --input-path PATH --output-path PATH [options]` */
export function synopsis(c: Command): string {
  const required = c.options
    .flatMap((g) => g.options)
    .filter((o) => o.required)
    .map((o) => `--${o.name}${o.placeholder ? ` ${o.placeholder}` : ''}`);
  return ['rfuav', c.name, ...required, '[options]', ...(c.positionals ? [c.positionals.usage] : [])].join(
    ' ',
  );
}

export function commandHelp(c: Command): string {
  const parts = [`rfuav ${c.name} — ${c.summary}`, `Usage: ${synopsis(c)}`];
  for (const g of c.options) {
    if (g.options.length === 0) continue;
    parts.push(`${g.title}:\n${columns(g.options.map((o) => [flagColumn(o), describe(o)]))}`);
  }
  parts.push(`  -h, --help  This text`);
  if (c.notes?.length) parts.push(c.notes.join('\n'));
  return `${parts.join('\n\n')}\n`;
}

export function generalHelp(table: Command[]): string {
  const parts = [
    'rfuav — RFUAV Model Service',
    'Usage: rfuav <command> [options]   (rfuav <command> --help, or rfuav help <command>: its options)',
  ];
  for (const [group, title] of GROUPS) {
    const rows = table.filter((c) => c.group === group).map((c): [string, string] => [c.name, c.summary]);
    if (rows.length) parts.push(`${title}:\n${columns(rows, 14)}`);
  }
  parts.push(
    wrap(
      'Client commands take --server URL ($RFUAV_SERVER, else http://127.0.0.1:8000) and --token T ' +
        '($RFUAV_TOKEN, else the first of $RFUAV_API_TOKENS). A followed task whose stream drops is ' +
        'resumed where it stopped, for up to $RFUAV_RECONNECT_S seconds (30).',
      0,
    ).join('\n'),
  );
  return `${parts.join('\n\n')}\n`;
}
