import { EVALUATION_METRICS, formatMetric } from '../../domain/metrics.js';
import { table, type TaskView } from '../format.js';
import type { SubmitEntry } from './submit.js';

interface SnrPoint {
  snr_folder: string;
  accuracy: number;
  samples: number;
}

function report(t: TaskView): void {
  const r = (t.result ?? {}) as Record<string, unknown>;
  const rows = [['METRIC', 'VALUE'], ...EVALUATION_METRICS.map((k) => [k, formatMetric(k, r[k])])];
  rows.push(['samples', String(r.samples)]);
  process.stdout.write(`${table(rows)}\n`);
  const snr = r.accuracy_vs_snr as SnrPoint[] | undefined;
  if (snr?.length) {
    const snrRows = [
      ['SNR', 'ACCURACY', 'SAMPLES'],
      ...snr.map((p) => [p.snr_folder, formatMetric('accuracy', p.accuracy), String(p.samples)]),
    ];
    process.stdout.write(`\n${table(snrRows)}\n`);
  }
  const files = Object.values((r.files as Record<string, string> | undefined) ?? {});
  process.stdout.write(`\nwritten to ${String(r.output_path)}: ${files.join(', ')}\n`);
}

/** `rfuav evaluate`: a trained model scored on a labelled set, per SNR folder when it has them. */
export const evaluateEntry: SubmitEntry = {
  kind: 'evaluation',
  name: 'evaluate',
  summary: 'Score a trained model on a labelled image set (per SNR folder when it has them)',
  aliases: { cfg_path: ['cfg'], weight_path: ['weights'], data_path: ['data'], save_path: ['save'] },
  report,
};
