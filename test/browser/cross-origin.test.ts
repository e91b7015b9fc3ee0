/**
 * A page opened from file:// (origin "null"), as the reference's readme says to open its own test
 * page, calling this service cross-origin in real Chromium: every request the page makes is a
 * real CORS request (JSON POSTs and DELETE are preflighted; the log stream is an EventSource).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../chromium.js';
import { writeImageFolder } from '../fixtures/images.js';
import { fakeNvidiaSmi, startService, tmpDir } from '../helpers.js';

const PAGE = pathToFileURL(path.resolve(import.meta.dirname, '../fixtures/pages/cross-origin.html')).href;

interface Seen {
  health: string;
  gpu: { available: boolean; header: string; devices: string[] };
  resources: string[];
  cpu: string;
  badTraining: { status: number; shown: string };
  split: { status: number; task_id: string; log: { entries: Record<string, unknown>[]; error?: boolean } };
  tasks: { total_training: number; other: string[] };
  delete: number;
  authorized: { status: number; total_training: number };
  authorizedPost: { status: number; shown: string };
}

async function visit(browser: Browser, query: string): Promise<Seen> {
  const page = await browser.newPage();
  try {
    await page.goto(`${PAGE}?${query}`);
    await page.waitForFunction('document.title === "done"', null, { timeout: 30_000 });
    return JSON.parse((await page.textContent('#out')) ?? '{}') as Seen;
  } finally {
    await page.close();
  }
}

describe('a file:// page calling the service cross-origin (Chromium)', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => browser?.close());

  it('reads health, GPUs, resources and CPU, submits a split, follows its log, lists and deletes it', async () => {
    const dir = tmpDir();
    await writeImageFolder(path.join(dir, 'data', 'raw_dataset'), { classes: 2, perClass: 5 });
    const smi = fakeNvidiaSmi(dir, [{ totalMiB: 16384, usedMiB: 4096, util: 12, name: 'NVIDIA Fake A100' }]);
    const svc = await startService(dir, { listen: true, env: { RFUAV_NVIDIA_SMI: smi.path } });
    const seen = await visit(browser, `api=${encodeURIComponent(svc.url)}`);

    assert.match(seen.health, /^version \d+\.\d+\.\d+ training 0 inference 0$/);
    assert.equal(seen.gpu.available, true);
    assert.match(seen.gpu.header, /^CUDA null PyTorch \d+\.\d+\S* count 1$/);
    assert.deepEqual(seen.gpu.devices, [
      'GPU 0 (cuda:0) NVIDIA Fake A100 cc 8.0 total 16.00 used 4.00 free 12.00 util 12.0% train=0 infer=0',
    ]);
    assert.deepEqual(seen.resources, ['CPU 0/2 0/4', 'CUDA:0 0/1 0/3']);
    assert.match(seen.cpu, /^cores \d+\/\d+ (\d+ MHz|-) load \d+\.\d\d, \d+\.\d\d, \d+\.\d\d$/);
    // An error reads as its message, not "[object Object]".
    assert.equal(seen.badTraining.status, 400);
    assert.equal(seen.badTraining.shown, "创建失败: train_path: 'data/train' does not exist");
    // The reference page's default split (0.8 + 0.2): accepted, followed to the end over SSE.
    assert.equal(seen.split.status, 200, JSON.stringify(seen.split));
    const entries = seen.split.log.entries;
    assert.ok(!seen.split.log.error, JSON.stringify(seen.split.log));
    assert.ok(
      entries.some((e) => e.level === 'INFO' && /Splitting 10 images of 2 classes/.test(String(e.message))),
    );
    assert.deepEqual(entries.at(-1), { status: 'completed', message: entries.at(-1)?.message });
    assert.ok(seen.tasks.other.some((t) => t.endsWith(' completed')));
    assert.equal(seen.delete, 200);
  });

  it('sends the Authorization header through a preflight when tokens are on', async () => {
    const dir = tmpDir();
    const svc = await startService(dir, { listen: true, env: { RFUAV_API_TOKENS: 'tok-1' } });
    const seen = await visit(browser, `api=${encodeURIComponent(svc.url)}&token=tok-1&only=auth`);
    assert.deepEqual(seen.authorized, { status: 200, total_training: 0 });
    assert.deepEqual(seen.authorizedPost, { status: 422, shown: 'input_path: is required' });
  });

  it('is refused by the browser when the origin is not in RFUAV_CORS_ORIGINS', async () => {
    const dir = tmpDir();
    const svc = await startService(dir, {
      listen: true,
      env: { RFUAV_CORS_ORIGINS: 'http://dashboard.example' },
    });
    const seen = await visit(browser, `api=${encodeURIComponent(svc.url)}&only=auth`);
    assert.match(String((seen.health as unknown as { thrown?: string }).thrown), /Failed to fetch/);
  });
});
