/**
 * The command table: every `rfuav` command, in the order `rfuav help` lists them. Dispatch, the
 * option parser and both kinds of help read it and nothing else. The submitting commands are one
 * per registered task kind: a kind with an entry here gets its name and reporting, one without
 * still gets a command named after its route (or kind), with options from its body schema.
 */
import { commandOptions, type Command } from '../command.js';
import { augmentEntry } from './augment.js';
import { cancelCommand } from './cancel.js';
import { cropEntry } from './crop.js';
import { evaluateEntry } from './evaluate.js';
import { hashTokenCommand } from './hash-token.js';
import { inferEntry } from './infer.js';
import { logsCommand } from './logs.js';
import { noiseCommand } from './noise.js';
import { predictCommand } from './predict.js';
import { serveCommand } from './serve.js';
import { spectrogramEntry } from './spectrogram.js';
import { splitEntry } from './split.js';
import { submitCommand, type JobSchema, type SubmitEntry } from './submit.js';
import { synthCommand } from './synth.js';
import { tasksCommand } from './tasks.js';
import { trainEntry } from './train.js';
import { usersCommand } from './users.js';

const SUBMIT_ENTRIES: SubmitEntry[] = [
  splitEntry,
  augmentEntry,
  cropEntry,
  spectrogramEntry,
  trainEntry,
  evaluateEntry,
  inferEntry,
];

/** Every spelling a command line may use for this command's options, with the option's name. */
function spellingsOf(c: Command): string[] {
  return commandOptions(c).flatMap((o) => {
    const names = [o.name, ...(o.aliases ?? [])];
    return [
      ...names,
      ...(o.type === 'boolean' ? names.map((n) => `no-${n}`) : []),
      ...(o.short ? [`-${o.short}`] : []),
    ];
  });
}

/** Two commands of one name, or two options one flag could mean, are bugs: found at start. */
function checkTable(table: Command[]): void {
  const dup = (xs: string[]) => xs.find((x, i) => xs.indexOf(x) !== i);
  const name = dup(table.map((c) => c.name));
  if (name) throw new Error(`two commands are named '${name}'`);
  for (const c of table) {
    const flag = dup([...spellingsOf(c), 'help', '-h']);
    if (flag) throw new Error(`'${c.name}' has two options spelled '${flag}'`);
  }
}

export function commandTable(jobs: JobSchema[]): Command[] {
  const entries = new Map(SUBMIT_ENTRIES.map((e) => [e.kind, e]));
  const submitting = jobs.map((job) => submitCommand(job, entries.get(job.kind))).filter((c) => c !== null);
  const table = [
    serveCommand,
    tasksCommand,
    logsCommand,
    cancelCommand,
    usersCommand,
    predictCommand,
    ...submitting,
    synthCommand,
    noiseCommand,
    hashTokenCommand,
  ];
  checkTable(table);
  return table;
}
