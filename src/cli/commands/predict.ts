import fs from 'node:fs/promises';
import path from 'node:path';
import { SLICING_REQUEST_FIELDS } from '../../signal/slicing.js';
import { apiClient, CLIENT_OPTIONS, type Command } from '../command.js';
import { table } from '../format.js';
import { UsageError } from '../options.js';
import { bodyFrom, fieldOption, type FieldOption } from '../schema-options.js';

interface PredictAnswer {
  class: string;
  confidence: number;
  top_k: { class: string; confidence: number }[];
  latency_ms: number;
  batch_size: number;
}

/** How an IQ chunk is drawn, read off the same field schemas the predict route checks. */
const FRAME_FIELDS = (['stft_point', 'width', 'height', 'dtype', 'render'] as const).map((f) =>
  fieldOption(f, SLICING_REQUEST_FIELDS[f], false),
);

const MODEL_FIELDS: FieldOption[] = [
  {
    field: 'model',
    name: 'model',
    type: 'string',
    placeholder: 'DIR',
    description: 'A trained model folder (config.yaml + best_model.onnx)',
  },
  {
    field: 'cfg_path',
    name: 'cfg',
    aliases: ['cfg-path'],
    type: 'string',
    placeholder: 'config.yaml',
    description: 'Model card, with --weights instead of --model',
  },
  {
    field: 'weight_path',
    name: 'weights',
    aliases: ['weight-path'],
    type: 'string',
    placeholder: 'FILE',
    description: '.onnx, or .pth with an .onnx beside it',
  },
  { field: 'top_k', name: 'top-k', type: 'integer', placeholder: 'N', default: 5, bounds: '1 to 100' },
];

function printAnswer(file: string, a: PredictAnswer): void {
  const rows = [
    ['CLASS', 'CONFIDENCE'],
    ...a.top_k.map((t) => [t.class, `${(t.confidence * 100).toFixed(2)}%`]),
  ];
  const batched = a.batch_size > 1 ? ` (batched with ${a.batch_size - 1} other request(s))` : '';
  process.stdout.write(
    `${path.basename(file)}: ${a.class} (${(a.confidence * 100).toFixed(1)}%)\n${table(rows)}\n` +
      `answered in ${a.latency_ms.toFixed(1)} ms on the server${batched}\n`,
  );
}

/** `rfuav predict FILE`: one local image or IQ chunk uploaded and classified at once (no task). */
export const predictCommand: Command = {
  name: 'predict',
  summary: 'Classify one local image or IQ chunk (.iq/.dat) at once, without a task',
  group: 'tasks',
  positionals: { usage: 'FILE', min: 1, max: 1 },
  options: [
    { title: 'Model (--model, or --cfg with --weights)', options: MODEL_FIELDS },
    { title: 'How an IQ chunk is drawn (default: the model card’s signal section)', options: FRAME_FIELDS },
    { title: 'Output', options: [{ name: 'json', type: 'boolean', description: 'The API answer as it is' }] },
    CLIENT_OPTIONS,
  ],
  async run(args) {
    const file = args.positionals[0] as string;
    const fields = bodyFrom([...MODEL_FIELDS, ...FRAME_FIELDS], args.given);
    if (fields.model === undefined && (fields.cfg_path === undefined || fields.weight_path === undefined))
      throw new UsageError('--model DIR, or --cfg with --weights, is required');
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.set(k, String(v));
    const bytes = await fs.readFile(file);
    form.set(/\.(iq|dat)$/i.test(file) ? 'iq' : 'image', new Blob([bytes]), path.basename(file));
    const answer = await apiClient(args).upload<PredictAnswer>('/api/v2/inference/predict', form);
    if (args.boolean('json')) process.stdout.write(`${JSON.stringify(answer)}\n`);
    else printAnswer(file, answer);
    return 0;
  },
};
