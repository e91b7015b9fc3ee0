import { table, type TaskView } from '../format.js';
import type { SubmitEntry } from './submit.js';

interface Failure {
  file: string;
  frame?: number;
  error: string;
}

function report(t: TaskView): void {
  const r = (t.result ?? {}) as Record<string, unknown>;
  const counts = Object.entries((r.counts as Record<string, number> | undefined) ?? {});
  const rows = [
    ['CLASS', 'IMAGES/FRAMES'],
    ...counts.sort((a, b) => b[1] - a[1]).map(([c, n]) => [c, String(n)]),
  ];
  process.stdout.write(`${table(rows)}\n`);
  for (const f of (r.failed as Failure[] | undefined) ?? [])
    process.stdout.write(`not classified: ${f.file}${f.frame ? ` frame ${f.frame}` : ''} (${f.error})\n`);
  const ips = typeof r.images_per_second === 'number' ? `, ${r.images_per_second.toFixed(1)} images/s` : '';
  const what = [
    r.images || !r.recordings ? `${String(r.images)} image(s)` : '',
    r.recordings ? `${String(r.frames)} frame(s) of ${String(r.recordings)} recording(s)` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  const anims = (r.animations as string[] | undefined)?.length ? ', annotated animations' : '';
  process.stdout.write(
    `${what} on ${String(r.engine)}${ips}; written to ${String(r.output_path)} (annotated copies${anims}, predictions.json, predictions.csv)\n`,
  );
}

/** `rfuav infer`: a trained model run over images or raw recordings, predictions written out. */
export const inferEntry: SubmitEntry = {
  kind: 'inference',
  name: 'infer',
  summary: 'Classify images or raw IQ recordings with a trained model (predictions and annotated copies)',
  aliases: {
    cfg_path: ['cfg'],
    weight_path: ['weights'],
    source_path: ['source'],
    save_path: ['save'],
    duration_time: ['duration'],
    animation_format: ['animation'],
  },
  report,
};
