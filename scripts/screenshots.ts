/**
 * Regenerates the dashboard's screenshots in docs/screenshots/: a real service (the CLI's
 * `serve`, embedded SQLite) doing real work on synthetic RF recordings — spectrograms, a split,
 * two small ResNet-18 trainings on the CPU, an evaluation, an inference over new recordings and
 * a run in progress, and the explorer on one of the new recordings — photographed in Debian's Chromium at 1280×800 and at
 * phone width. GPU figures come from a simulated nvidia-smi (the machines this runs on have none).
 *
 *   node --import tsx scripts/screenshots.ts        (after npm run build; takes a few minutes)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium } from '../test/chromium.js';
import { CLASS_PROFILES, writeDataset, writeRecording } from '../src/signal/synth.js';
import { fakeNvidiaSmi, freePort } from '../test/helpers.js';

const root = path.resolve(import.meta.dirname, '..');
const out = path.join(root, 'docs', 'screenshots');

async function call(url: string, method = 'GET', body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function until(what: string, check: () => Promise<boolean>, ms = 180_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The signal the synthetic recordings are drawn with (the spectrogram task's fields). */
const SIGNAL = { sample_rate: 2e6, stft_point: 512, duration_time: 0.05, width: 96, height: 96 };

/** Recordings, spectrograms, a split, two trainings, an evaluation, an inference and a run in progress. */
async function pipeline(url: string, data: string) {
  const status = async (id: unknown) => (await call(`${url}/api/v2/tasks/${String(id)}`)).status as string;
  const completed = async (route: string, body: unknown) => {
    const t = await call(`${url}${route}`, 'POST', body);
    await until(route, async () => (await status(t.task_id)) === 'completed');
    return t;
  };
  await writeDataset({
    out: path.join(data, 'rf'),
    classes: 4,
    perClass: 4,
    sampleRate: SIGNAL.sample_rate,
    durationS: 0.3,
    snrsDb: [0, 15],
    seed: 7,
  });
  for (const [i, profile] of CLASS_PROFILES.slice(0, 2).entries()) {
    await writeRecording(path.join(data, 'incoming', `capture-${i + 1}.iq`), profile, {
      sampleRate: SIGNAL.sample_rate,
      durationS: 0.6,
      snrDb: 10,
      seed: 100 + i,
    });
  }
  // A capture in which one drone hands over to another: the explorer's strip shows both.
  fs.writeFileSync(
    path.join(data, 'incoming', 'handover.iq'),
    Buffer.concat([1, 2].map((i) => fs.readFileSync(path.join(data, 'incoming', `capture-${i}.iq`)))),
  );
  await completed('/api/v2/preprocessing/spectrogram', {
    input_path: 'rf',
    output_path: 'rf_spec',
    ...SIGNAL,
  });
  const split = await completed('/api/v2/preprocessing/split', {
    input_path: 'rf_spec',
    output_path: 'rf_split',
    train_ratio: 0.75,
    seed: 42,
  });
  const run = {
    model: 'resnet18',
    num_classes: 4,
    train_path: 'rf_split/train',
    val_path: 'rf_split/valid',
    save_path: 'runs',
    device: 'cpu',
    image_size: 64,
    batch_size: 16,
    num_epochs: 5,
    pretrained: false,
    seed: 1,
  };
  const r1 = await call(`${url}/api/v2/training/start`, 'POST', {
    ...run,
    name: 'lr-1e-3',
    learning_rate: 0.001,
  });
  const r2 = await call(`${url}/api/v2/training/start`, 'POST', {
    ...run,
    name: 'lr-1e-2',
    learning_rate: 0.01,
  });
  await until(
    'both trainings',
    async () => (await status(r1.task_id)) === 'completed' && (await status(r2.task_id)) === 'completed',
    600_000,
  );
  const ev = await completed('/api/v2/evaluation/start', {
    cfg_path: 'runs/lr-1e-3/config.yaml',
    weight_path: 'runs/lr-1e-3/best_model.pth',
    data_path: 'rf_split/valid',
    save_path: 'evals/lr-1e-3',
    device: 'cpu',
  });
  const inf = await completed('/api/v2/inference/start', {
    cfg_path: 'runs/lr-1e-3/config.yaml',
    weight_path: 'runs/lr-1e-3/best_model.onnx',
    source_path: 'incoming',
    save_path: 'inferred',
    device: 'cpu',
  });
  // Work in progress for the overview and the list: a long run, and two waiting behind it.
  const long = await call(`${url}/api/v2/training/start`, 'POST', { ...run, name: 'long', num_epochs: 200 });
  await call(`${url}/api/v2/training/start`, 'POST', { ...run, name: 'next', num_epochs: 200 });
  await call(`${url}/api/v2/training/start`, 'POST', { ...run, name: 'after', num_epochs: 200 });
  await until('the long run', async () => (await status(long.task_id)) === 'running');
  return { split, r1, r2, ev, inf };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rfuav-shots-'));
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  const smi = fakeNvidiaSmi(dir, [
    { totalMiB: 24576, usedMiB: 9216, util: 63, name: 'NVIDIA RTX A5000' },
    { totalMiB: 24576, usedMiB: 1024, util: 4, name: 'NVIDIA RTX A5000' },
  ]);
  const port = await freePort();
  const server = spawn(process.execPath, [path.join(root, 'bin/rfuav.js'), 'serve', '--port', String(port)], {
    env: {
      ...process.env,
      RFUAV_HOME: path.join(dir, 'home'),
      RFUAV_DATA_ROOT: data,
      RFUAV_NVIDIA_SMI: smi.path,
      RFUAV_TORCH_THREADS: '1',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const browser = await launchChromium();
  try {
    await until(
      'the service',
      () =>
        fetch(`${url}/api/v1/health`).then(
          (r) => r.ok,
          () => false,
        ),
      30_000,
    );
    const { r1, r2, ev, inf } = await pipeline(url, data);
    fs.mkdirSync(out, { recursive: true });
    const shots: [string, string, { width: number; height: number }, string?][] = [
      ['overview', '/ui/', { width: 1280, height: 800 }],
      ['tasks', '/ui/tasks', { width: 1280, height: 800 }],
      ['training', `/ui/tasks/${String(r1.task_id)}`, { width: 1280, height: 800 }, '#curve svg circle'],
      ['evaluation', `/ui/tasks/${String(ev.task_id)}`, { width: 1280, height: 800 }, '#confusion svg rect'],
      [
        'compare',
        `/ui/compare?ids=${String(r1.task_id)},${String(r2.task_id)}`,
        { width: 1280, height: 800 },
        '#compare-charts polyline',
      ],
      [
        'inference',
        `/ui/tasks/${String(inf.task_id)}`,
        { width: 1280, height: 800 },
        '#predictions-table img[src^="blob:"]',
      ],
      [
        'explorer',
        '/ui/explorer?path=incoming%2Fhandover.iq&model=runs%2Flr-1e-3&offset=0.55',
        { width: 1280, height: 800 },
        '#strip[data-done="true"]',
      ],
      ['submit-training', '/ui/submit/training', { width: 1280, height: 800 }, '#submit-form'],
      ['tasks-phone', '/ui/tasks', { width: 390, height: 844 }],
      [
        'explorer-phone',
        '/ui/explorer?path=incoming%2Fhandover.iq&model=runs%2Flr-1e-3&offset=0.55',
        { width: 390, height: 844 },
        '#strip[data-done="true"]',
      ],
    ];
    for (const [name, page, viewport, wait] of shots) {
      for (const scheme of ['light', 'dark'] as const) {
        if (scheme === 'dark' && name !== 'training' && name !== 'explorer') continue;
        const p = await browser.newPage({ viewport, colorScheme: scheme });
        await p.goto(`${url}${page}`);
        await p.waitForSelector(wait ?? 'table', { state: 'attached', timeout: 30_000 });
        await p.waitForTimeout(500);
        // The inference page is long: the photograph is of its predictions table.
        if (name === 'inference') await p.locator('#predictions').evaluate((e) => e.scrollIntoView());
        const file = path.join(out, `${name}${scheme === 'dark' ? '-dark' : ''}.png`);
        await p.screenshot({ path: file, fullPage: !name.endsWith('-phone') && name !== 'inference' });
        await p.close();
        console.log(`wrote ${path.relative(root, file)}`);
      }
    }
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
