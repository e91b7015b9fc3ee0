import { addNoiseAtSnr } from '../../signal/noise.js';
import type { Command } from '../command.js';
import { ProgressBar } from '../progress.js';

/** `rfuav noise`: white noise added to a recording at a measured SNR, locally (no server). */
export const noiseCommand: Command = {
  name: 'noise',
  summary: 'Add white noise to an IQ recording at a given SNR',
  group: 'local',
  options: [
    {
      title: 'Options',
      options: [
        { name: 'input', type: 'string', placeholder: 'FILE', required: true },
        {
          name: 'output',
          type: 'string',
          placeholder: 'FILE',
          required: true,
          description: 'Written as float32',
        },
        {
          name: 'snr',
          type: 'number',
          placeholder: 'DB',
          required: true,
          description: 'Over the occupied band',
        },
        {
          name: 'dtype',
          type: 'string',
          enum: ['float32', 'int16'],
          default: 'float32',
          description: "The input's samples",
        },
        {
          name: 'occupied-fraction',
          type: 'number',
          placeholder: 'F',
          description: 'Occupied band as a fraction of the sample rate (default: its 99 % power bandwidth)',
        },
        { name: 'seed', type: 'integer', placeholder: 'S', default: 0 },
      ],
    },
  ],
  async run(args) {
    const output = args.string('output') as string;
    const bar = new ProgressBar();
    const report = await addNoiseAtSnr(args.string('input') as string, output, {
      snrDb: args.number('snr') as number,
      dtype: args.string('dtype') as 'float32' | 'int16',
      seed: args.number('seed') as number,
      occupiedFraction: args.number('occupied-fraction'),
      onProgress: (f) => bar.update(f * 100, output),
    });
    bar.clear();
    process.stdout.write(
      `${output}: ${report.samples} samples, float32; occupied band ${(report.occupied_fraction * 100).toFixed(1)} % ` +
        `of the sample rate (${report.occupied_estimated ? 'estimated, 99 % power' : 'given'}); ` +
        `SNR ${report.snr_measured_db.toFixed(2)} dB (target ${report.snr_db})\n`,
    );
    return 0;
  },
};
