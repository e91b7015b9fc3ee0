import { CLASS_PROFILES, writeDataset } from '../../signal/synth.js';
import type { Command } from '../command.js';
import { UsageError, type Args } from '../options.js';
import { ProgressBar } from '../progress.js';

function positive(args: Args, name: string): number {
  const n = args.number(name) as number;
  if (!(n > 0)) throw new UsageError(`--${name} must be positive (got ${n})`);
  return n;
}

/** `rfuav synth`: a labelled set of synthetic IQ recordings, written locally (no server). */
export const synthCommand: Command = {
  name: 'synth',
  summary: 'Write synthetic drone-like IQ recordings, one folder per class',
  group: 'local',
  options: [
    {
      title: 'Options',
      options: [
        {
          name: 'out',
          type: 'string',
          placeholder: 'DIR',
          required: true,
          description: 'Receives <class>/*.iq and manifest.json',
        },
        {
          name: 'classes',
          type: 'integer',
          placeholder: 'N',
          default: 4,
          bounds: `1 to ${CLASS_PROFILES.length}`,
        },
        {
          name: 'per-class',
          type: 'integer',
          placeholder: 'N',
          default: 10,
          description: 'Recordings per class',
        },
        {
          name: 'sample-rate',
          type: 'number',
          placeholder: 'X',
          default: 100e6,
          description: 'Samples per second',
        },
        {
          name: 'duration',
          type: 'number',
          placeholder: 'S',
          default: 0.1,
          description: 'Seconds per recording',
        },
        {
          name: 'snr',
          type: 'number',
          list: true,
          placeholder: 'DB[,DB…]',
          default: [10],
          description: 'SNRs, assigned round-robin',
        },
        { name: 'seed', type: 'integer', placeholder: 'S', default: 0 },
      ],
    },
  ],
  async run(args) {
    const out = args.string('out') as string;
    const classes = positive(args, 'classes');
    if (classes > CLASS_PROFILES.length) {
      throw new UsageError(`--classes must be at most ${CLASS_PROFILES.length} (the built-in classes)`);
    }
    const sampleRate = positive(args, 'sample-rate');
    const durationS = positive(args, 'duration');
    const perClass = positive(args, 'per-class');
    const snrsDb = args.numbers('snr') as number[];
    const seed = args.number('seed') as number;
    const bytes = classes * perClass * Math.round(sampleRate * durationS) * 8;
    process.stdout.write(
      `Writing ${classes} classes × ${perClass} recordings of ${durationS} s at ${sampleRate} S/s ` +
        `(${(bytes / 2 ** 20).toFixed(1)} MiB) to ${out}, SNR ${snrsDb.join(', ')} dB, seed ${seed}\n`,
    );
    const bar = new ProgressBar();
    const manifest = await writeDataset({
      out,
      classes,
      perClass,
      sampleRate,
      durationS,
      snrsDb,
      seed,
      onRecording: (done, total, file) => bar.update((done / total) * 100, file),
    });
    bar.clear();
    for (const c of manifest.classes) process.stdout.write(`  ${c.name.padEnd(8)} ${c.summary}\n`);
    const worst = Math.max(...manifest.recordings.map((r) => Math.abs(r.snr_measured_db - r.snr_db)));
    process.stdout.write(
      `${manifest.recordings.length} recordings written; measured SNR within ${worst.toFixed(2)} dB of the target ` +
        `(per recording in ${out}/manifest.json)\n`,
    );
    return 0;
  },
};
