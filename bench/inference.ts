/**
 * Inference speed (SPEC §2.3 / issue budget: ≤ 15 ms per image end to end — decode, resize,
 * forward — for ResNet-18 at 224 px on the CPU; the reference's path took 117–125 ms here).
 *
 *  1. Images per second through the inference task (a running service in its own process),
 *     ONNX and torch engines, predictions only (annotate: false) and with annotated copies,
 *     against the same model run directly in PyTorch eager (bench/bare_infer.py: PIL + the
 *     training transform + forward, batches of 8). Two image sets: the RFUAV sample spectrogram
 *     (1800×1200 JPEG) and 640×480 PNG spectrograms.
 *  2. The predict endpoint: latency p50/p99 and throughput at 1, 8 and 32 concurrent clients
 *     (each sends its next request when the last is answered; a 640×480 PNG as base64), with
 *     batching (up to 8 requests / 5 ms) and without (RFUAV_PREDICT_MAX_BATCH=1).
 *
 * The model has random weights (no download, no training needed): speed does not depend on them.
 * Both the service and PyTorch get 2 threads (RFUAV_TORCH_THREADS=2, torch.set_num_threads(2)).
 *
 *   node --import tsx bench/inference.ts          (BENCH_QUICK=1 for a smoke run)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { runTorch } from '../src/engines/torch/runner.js';
import { QUICK, fmtMs, machineInfo, mdTable, percentile, verdict, writeSection } from './report.js';
import { REPO_ROOT, createBenchHome, getJson, postJson, startServer, type TaskView } from './server.js';

const PYTHON = process.env.RFUAV_PYTHON ?? '/usr/bin/python3';
const THREADS = 2;
const IMAGES = QUICK ? 8 : 48;
const SAMPLE = path.join(REPO_ROOT, '../shared/data/spectrograms/avata-2.4ghz-flight.jpg');

const home = createBenchHome('inference');
const root = home.dataRoot;

// A ResNet-18 with 8 classes at 224 px: weights, model card, ONNX export (the runner's own).
const model = path.join(root, 'model');
fs.mkdirSync(model, { recursive: true });
execFileSync(PYTHON, [
  '-c',
  `import torch, torchvision, yaml
torch.manual_seed(0)
torch.save(torchvision.models.resnet18(num_classes=8).state_dict(), '${model}/best_model.pth')
yaml.safe_dump({'model': 'resnet18', 'num_classes': 8, 'image_size': 224,
  'class_names': {f'class{i}': i for i in range(8)}}, open('${model}/config.yaml', 'w'))`,
]);
await runTorch({
  python: PYTHON,
  command: 'export-onnx',
  request: {
    cfg_path: `${model}/config.yaml`,
    weight_path: `${model}/best_model.pth`,
    output: `${model}/best_model.onnx`,
  },
  silenceTimeoutMs: 300_000,
  killGraceMs: 1000,
  onEvent: () => undefined,
});

// Image sets: copies of the real sample, and 640×480 PNGs made from it (each slightly different).
const sets: Record<string, string> = { 'RFUAV JPEG 1800×1200': 'jpg', 'PNG 640×480': 'png' };
fs.mkdirSync(path.join(root, 'jpg'));
fs.mkdirSync(path.join(root, 'png'));
for (let i = 0; i < IMAGES; i++) {
  fs.copyFileSync(SAMPLE, path.join(root, 'jpg', `${i}.jpg`));
  await sharp(SAMPLE)
    .extract({ left: i * 4, top: i * 2, width: 1600, height: 1100 })
    .resize(640, 480, { fit: 'fill' })
    .png()
    .toFile(path.join(root, 'png', `${i}.png`));
}

interface Row {
  set: string;
  path: string;
  msPerImage: number;
  imagesPerS: number;
}
const rows: Row[] = [];

const server = await startServer({ home, env: { RFUAV_TORCH_THREADS: String(THREADS) } });
try {
  const url = server.url;
  const runTask = async (body: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const { task_id } = await postJson<TaskView>(`${url}/api/v2/inference/start`, {
      cfg_path: 'model/config.yaml',
      device: 'cpu',
      batch_size: 8,
      ...body,
    });
    for (;;) {
      const t = await getJson<TaskView & { result?: Record<string, unknown>; error?: string }>(
        `${url}/api/v2/inference/${task_id}`,
      );
      if (t.status === 'completed') return t.result as Record<string, unknown>;
      if (t.status === 'failed' || t.status === 'cancelled') throw new Error(`${t.status}: ${t.error}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  for (const [label, dir] of Object.entries(sets)) {
    const variants: [string, Record<string, unknown>][] = [
      [
        'service, ONNX Runtime, predictions only',
        { engine: 'onnx', weight_path: 'model/best_model.onnx', annotate: false },
      ],
      ['service, ONNX Runtime, + annotated copies', { engine: 'onnx', weight_path: 'model/best_model.onnx' }],
      [
        'service, PyTorch runner, predictions only',
        { engine: 'torch', weight_path: 'model/best_model.pth', annotate: false },
      ],
    ];
    // A warm-up task (session creation, both worker threads started) that is not counted.
    const warm = path.join(root, `warm-${dir}`);
    fs.mkdirSync(warm);
    for (let i = 0; i < 4; i++)
      fs.copyFileSync(path.join(root, dir, `${i}.${dir}`), path.join(warm, `${i}.${dir}`));
    await runTask({ ...variants[0]?.[1], source_path: `warm-${dir}`, save_path: 'out/warm' });
    for (const [name, body] of variants) {
      const r = await runTask({ ...body, source_path: dir, save_path: `out/${dir}-${rows.length}` });
      const seconds = r.seconds as number;
      rows.push({
        set: label,
        path: name,
        msPerImage: (seconds * 1000) / IMAGES,
        imagesPerS: IMAGES / seconds,
      });
      console.error(`[bench] ${label} / ${name}: ${((seconds * 1000) / IMAGES).toFixed(1)} ms/image`);
    }
    const files = fs.readdirSync(path.join(root, dir)).map((f) => path.join(root, dir, f));
    const bare = JSON.parse(
      execFileSync(PYTHON, [
        path.join(REPO_ROOT, 'bench/bare_infer.py'),
        JSON.stringify({
          cfg_path: `${model}/config.yaml`,
          weight_path: `${model}/best_model.pth`,
          files,
          threads: THREADS,
          batch_size: 8,
        }),
      ]).toString(),
    ) as { seconds: number; forward_seconds: number };
    rows.push({
      set: label,
      path: 'PyTorch eager, direct',
      msPerImage: (bare.seconds * 1000) / IMAGES,
      imagesPerS: IMAGES / bare.seconds,
    });
    rows.push({
      set: label,
      path: 'PyTorch eager, forward alone',
      msPerImage: (bare.forward_seconds * 1000) / IMAGES,
      imagesPerS: IMAGES / bare.forward_seconds,
    });
  }
} finally {
  await server.stop();
}

// Predict endpoint under load, with and without batching.
const png = fs.readFileSync(path.join(root, 'png', '0.png')).toString('base64');
interface LoadRow {
  batching: string;
  clients: number;
  requests: number;
  p50: number;
  p99: number;
  perS: number;
  meanBatch: number;
  prepare: number;
  model: number;
  errors: number;
}
const loadRows: LoadRow[] = [];
for (const [label, env] of [
  ['up to 8 / 5 ms', { RFUAV_PREDICT_MAX_BATCH: '8', RFUAV_PREDICT_MAX_WAIT_MS: '5' }],
  ['off (batch 1)', { RFUAV_PREDICT_MAX_BATCH: '1' }],
] as const) {
  const s = await startServer({ home, env: { RFUAV_TORCH_THREADS: String(THREADS), ...env } });
  try {
    const once = async () => {
      const t0 = performance.now();
      const res = await fetch(`${s.url}/api/v2/inference/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'model', image_base64: png }),
      });
      const body = (await res.json()) as {
        batch_size?: number;
        timing_ms?: { prepare: number; model: number };
      };
      return {
        ms: performance.now() - t0,
        ok: res.status === 200,
        batch: body.batch_size ?? 0,
        prepare: body.timing_ms?.prepare ?? 0,
        model: body.timing_ms?.model ?? 0,
      };
    };
    for (let i = 0; i < 4; i++) await once(); // warm-up
    await Promise.all(Array.from({ length: 4 }, once)); // both worker threads started
    for (const clients of [1, 8, 32]) {
      const perClient = QUICK ? 2 : clients === 1 ? 40 : Math.max(4, Math.ceil(128 / clients));
      const results: Awaited<ReturnType<typeof once>>[] = [];
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: clients }, async () => {
          for (let i = 0; i < perClient; i++) results.push(await once());
        }),
      );
      const wall = (performance.now() - t0) / 1000;
      const ok = results.filter((r) => r.ok);
      const lat = ok.map((r) => r.ms).sort((a, b) => a - b);
      loadRows.push({
        batching: label,
        clients,
        requests: results.length,
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
        perS: ok.length / wall,
        meanBatch: ok.reduce((a, r) => a + r.batch, 0) / Math.max(1, ok.length),
        prepare: ok.reduce((a, r) => a + r.prepare, 0) / Math.max(1, ok.length),
        model: ok.reduce((a, r) => a + r.model, 0) / Math.max(1, ok.length),
        errors: results.length - ok.length,
      });
      console.error(`[bench] predict ${label}, ${clients} clients: p50 ${percentile(lat, 50).toFixed(1)} ms`);
    }
  } finally {
    await s.stop();
  }
}

const best = Math.min(...rows.filter((r) => r.path.startsWith('service, ONNX')).map((r) => r.msPerImage));
const table1 = mdTable(
  ['Images', 'Path', 'ms / image', 'images / s'],
  rows.map((r) => [r.set, r.path, fmtMs(r.msPerImage), r.imagesPerS.toFixed(1)]),
);
const table2 = mdTable(
  [
    'Batching',
    'Clients',
    'Requests',
    'p50 ms',
    'p99 ms',
    'Requests / s',
    'Mean batch',
    'Server: decode ms',
    'Server: model run ms',
    'Errors',
  ],
  loadRows.map((r) => [
    r.batching,
    r.clients,
    r.requests,
    fmtMs(r.p50),
    fmtMs(r.p99),
    r.perS.toFixed(1),
    r.meanBatch.toFixed(2),
    fmtMs(r.prepare),
    fmtMs(r.model),
    r.errors,
  ]),
);
const body = `ResNet-18, 8 classes, 224 px, random weights, CPU, ${THREADS} threads for ONNX Runtime and for PyTorch; ${IMAGES} images per set; inference tasks on a running service (own process), timed by the task itself (\`result.seconds\`: from the first decode to the last prediction and output file).

${table1}

Best service path: ${fmtMs(best)} ms per image (budget ≤ 15 ms: ${verdict(best <= 15)}).

Predict endpoint (\`POST /api/v2/inference/predict\`, 640×480 PNG as base64 JSON, model folder), clients in closed loop:

${table2}
`;
console.log(body);
writeSection('inference', 'Inference (bench/inference.ts)', machineInfo(), body);
