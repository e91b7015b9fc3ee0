/**
 * The dashboard in real Chromium against a real service doing real work: a split, a small
 * PyTorch training and its evaluation, a task cancelled from its page, and the same with tokens.
 * Every page is checked for console errors and failed requests.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { CLASS_PROFILES, writeRecording, type ClassProfile } from '../../src/signal/synth.js';
import { launchChromium } from '../chromium.js';
import { writeImageFolder } from '../fixtures/images.js';
import { Gates } from '../gate-job.js';
import { startService, tmpDir, waitFor } from '../helpers.js';

/** How the training images are said to have been drawn (the card's signal section). */
const SIGNAL = {
  sample_rate: 1_000_000,
  stft_point: 256,
  duration_time: 0.01,
  ratio: 1,
  noverlap: 128,
  dtype: 'float32',
  width: 64,
  height: 64,
  colormap: 'jet',
  render: 'matplotlib',
};

interface Watched {
  page: Page;
  problems: string[];
}

/** A page that records every console error, page error and failed request it meets. */
async function open(browser: Browser, url: string): Promise<Watched> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    // Failed answers are recorded below, with their address.
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text()))
      problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${new URL(r.url()).pathname}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A stream the page itself closed on leaving is not a failure.
    if (!/ERR_ABORTED/.test(r.failure()?.errorText ?? '')) problems.push(`request failed: ${r.url()}`);
  });
  await page.goto(url);
  return { page, problems };
}

async function post(url: string, body: unknown, token?: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}

describe('dashboard (Chromium)', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => browser?.close());

  it('a browser at / lands on the overview; the task list shows a new split live; its page streams the log', async () => {
    const dir = tmpDir();
    await writeImageFolder(path.join(dir, 'data', 'ds'), { classes: 2, perClass: 6 });
    const svc = await startService(dir, { listen: true });
    const overview = await open(browser, `${svc.url}/`);
    assert.equal(new URL(overview.page.url()).pathname, '/ui/');
    await overview.page.waitForSelector('#queue-length .n');
    await overview.page.waitForSelector('#slots >> text=cpu');
    assert.deepEqual(overview.problems, []);
    await overview.page.close();

    const list = await open(browser, `${svc.url}/ui/tasks?status=&kind=dataset_split`);
    await list.page.waitForSelector('text=No task matches.');
    const split = await post(`${svc.url}/api/v2/preprocessing/split`, {
      input_path: 'ds',
      output_path: 'splits/s1',
      train_ratio: 0.6,
    });
    const id = String(split.task_id);
    // Live: the row appears without a reload, and reaches completed.
    const row = list.page.locator(`tr[data-task="${id}"]`);
    await row.waitFor({ timeout: 5000 });
    assert.ok(
      (await row.locator('a').textContent())?.startsWith(id.slice(0, 8)),
      'the id, by its first 8 characters',
    );
    await row.locator('text=completed').waitFor({ timeout: 10_000 });
    // The filters live in the URL: another kind shows nothing, and the page rebuilt from it too.
    await list.page.selectOption('#f-kind', 'training');
    await list.page.waitForURL(/kind=training/);
    await list.page.waitForSelector('text=No task matches.');
    await list.page.goBack().catch(() => undefined);
    await list.page.goto(`${svc.url}/ui/tasks?kind=dataset_split&q=${id.slice(0, 6)}`);
    await list.page.locator(`tr[data-task="${id}"] a`).click();
    await list.page.waitForURL(new RegExp(`/ui/tasks/${id}$`));
    await list.page.waitForSelector('#task-head >> text=completed');
    // Its log, from the stream: the first line and the final status.
    await list.page.locator('#log >> text=Task accepted').waitFor({ timeout: 2000 });
    await list.page.locator('#log .final >> text=completed').waitFor({ timeout: 2000 });
    assert.match((await list.page.textContent('#task-params')) ?? '', /"train_ratio": 0.6/);
    // Level filter: WARNING and above hides the INFO lines, and says so in the URL.
    await list.page.selectOption('#log-level', 'WARNING');
    assert.match(list.page.url(), /level=WARNING/);
    assert.equal(await list.page.locator('#log div.INFO:visible').count(), 0);
    assert.deepEqual(list.problems, []);
    await list.page.close();
  });

  it('a split submitted from its form (paths picked from the data root) runs; a 4xx shows beside its field; run again refills it', async () => {
    const dir = tmpDir();
    await writeImageFolder(path.join(dir, 'data', 'ds'), { classes: 2, perClass: 6 });
    const svc = await startService(dir, { listen: true });
    const { page, problems } = await open(browser, `${svc.url}/ui/submit`);
    await page.locator('#kinds a', { hasText: 'dataset_split' }).click();
    await page.waitForURL(/\/ui\/submit\/dataset_split$/);
    await page.locator('#submit-form').waitFor();
    // Inputs are named by the schema's fields.
    for (const name of ['input_path', 'output_path', 'train_ratio', 'val_ratio', 'seed', 'priority'])
      assert.equal(await page.locator(`#submit-form [name="${name}"]`).count(), 1, name);
    await page.locator('#picker-input_path').waitFor({ state: 'attached' });
    await page.locator('button[aria-controls="picker-input_path"]').click();
    await page.locator('#picker-input_path button[data-path="ds"]').click();
    await page.locator('#picker-input_path button', { hasText: 'Use this folder' }).click();
    assert.equal(await page.inputValue('#field-input_path'), 'ds');
    await page.fill('#field-output_path', 'splits/from-form');
    await page.fill('#field-train_ratio', '0.95');
    await page.locator('#submit-form button[type="submit"]').click();
    await page
      .locator('#err-train_ratio')
      .filter({ hasText: /train_ratio/ })
      .waitFor();
    assert.equal(
      await page.textContent('#form-error'),
      '',
      'the message is beside its field, not above the button',
    );
    await page.fill('#field-train_ratio', '0.6');
    await page.locator('#submit-form button[type="submit"]').click();
    await page.waitForURL(/\/ui\/tasks\/[0-9a-f-]{36}$/);
    const id = new URL(page.url()).pathname.split('/').pop() as string;
    await page.locator('#log >> text=Task accepted').waitFor({ timeout: 2000 });
    await page.waitForSelector('#task-head >> text=completed', { timeout: 10_000 });
    const list = await (await fetch(`${svc.url}/api/v2/tasks?task_type=dataset_split`)).json();
    assert.deepEqual(
      (list as { other_tasks: { task_id: string }[] }).other_tasks.map((t) => t.task_id),
      [id],
    );
    // Run again: the same form, filled in from this task.
    await page.locator('#run-again').click();
    await page.waitForURL(new RegExp(`/ui/submit/dataset_split\\?from=${id}$`));
    await page.locator('#field-input_path').waitFor();
    assert.equal(await page.inputValue('#field-input_path'), 'ds');
    assert.equal(await page.inputValue('#field-train_ratio'), '0.6');
    assert.deepEqual(
      problems.filter((p) => !/HTTP 422: \/api\/v2\/preprocessing\/split/.test(p)),
      [],
    );
    await page.close();
  });

  it('a training page draws its curve as epochs arrive; two runs compare; an evaluation shows the matrix', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    await writeImageFolder(path.join(data, 'set/train'), { classes: 3, perClass: 8, size: 64, seed: 3 });
    await writeImageFolder(path.join(data, 'set/val'), { classes: 3, perClass: 4, size: 64, seed: 11 });
    // As if the images were the spectrogram task's: the model card then says how to draw slices.
    fs.writeFileSync(path.join(data, 'set/signal.json'), JSON.stringify(SIGNAL));
    const svc = await startService(dir, { listen: true, env: { RFUAV_TORCH_THREADS: '1' } });
    const run = {
      model: 'resnet18',
      num_classes: 3,
      train_path: 'set/train',
      val_path: 'set/val',
      save_path: 'runs',
      name: 'r1',
      device: 'cpu',
      image_size: 64,
      batch_size: 4,
      num_epochs: 3,
      pretrained: false,
      seed: 1,
    };
    const t = await post(`${svc.url}/api/v2/training/start`, run);
    const other = await post(`${svc.url}/api/v2/training/start`, {
      ...run,
      name: 'r2',
      num_epochs: 2,
      learning_rate: 0.01,
    });
    const id = String(t.task_id);
    const { page, problems } = await open(browser, `${svc.url}/ui/tasks/${id}`);
    // The curve grows while the page is open: one point per finished epoch.
    const points = () => page.locator('#curve svg').first().locator('circle').count();
    await waitFor(async () => (await points()) >= 2 * 1, 120_000, 'the first epoch on the curve');
    await page.waitForSelector('#task-head >> text=completed', { timeout: 120_000 });
    await waitFor(async () => (await points()) === 2 * 3, 10_000, 'three epochs of train and val loss');
    assert.deepEqual(problems, []);

    // Both ticked in the list, then compared: a line per run, only what differs, min/max per metric.
    await waitFor(
      async () =>
        (
          (await (await fetch(`${svc.url}/api/v2/tasks/${String(other.task_id)}`)).json()) as {
            status: string;
          }
        ).status === 'completed',
      120_000,
      'the second run',
    );
    await page.goto(`${svc.url}/ui/tasks?kind=training`);
    for (const runId of [id, String(other.task_id)])
      await page.locator(`input[aria-label="compare ${runId}"]`).check();
    await page.locator('#compare-link').click();
    await page.waitForURL(/\/ui\/compare\?ids=/);
    await page.waitForSelector('#compare-charts [data-metric="train_loss"] polyline');
    assert.equal(await page.locator('#compare-charts [data-metric="train_loss"] polyline').count(), 2);
    const differing = await page
      .locator('#param-diff tr[data-param]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-param')));
    assert.ok(differing.includes('learning_rate') && differing.includes('num_epochs'), differing.join());
    assert.ok(!differing.includes('model'), 'the same model is not listed');
    assert.ok((await page.locator('#metric-stats tbody tr').count()) >= 4);
    assert.deepEqual(problems, []);
    await page.close();

    const ev = await post(`${svc.url}/api/v2/evaluation/start`, {
      cfg_path: 'runs/r1/config.yaml',
      weight_path: 'runs/r1/best_model.pth',
      data_path: 'set/val',
      save_path: 'evals/e1',
      device: 'cpu',
    });
    const evPage = await open(browser, `${svc.url}/ui/tasks/${String(ev.task_id)}`);
    await evPage.page.waitForSelector('#confusion svg rect', { timeout: 60_000 });
    assert.equal(await evPage.page.locator('#confusion svg rect').count(), 9, 'a 3 × 3 matrix');
    assert.equal(await evPage.page.locator('#per-class tbody tr').count(), 3);
    assert.deepEqual(evPage.problems, []);
    await evPage.page.close();

    await explorerChecks(svc.url, data);
    await inferenceChecks(svc.url, data);
  });

  /** An inference over an image and a recording: its page lists predictions with thumbnails. */
  async function inferenceChecks(url: string, data: string) {
    fs.mkdirSync(path.join(data, 'inbox'));
    const label = fs.readdirSync(path.join(data, 'set/val')).sort()[0] as string;
    const image = fs.readdirSync(path.join(data, 'set/val', label))[0] as string;
    fs.copyFileSync(path.join(data, 'set/val', label, image), path.join(data, 'inbox/picture.png'));
    fs.copyFileSync(path.join(data, 'rec/drone.iq'), path.join(data, 'inbox/drone.iq'));
    const inf = await post(`${url}/api/v2/inference/start`, {
      cfg_path: 'runs/r1/config.yaml',
      weight_path: 'runs/r1/best_model.onnx',
      source_path: 'inbox',
      save_path: 'inferred',
      device: 'cpu',
    });
    const { page, problems } = await open(browser, `${url}/ui/tasks/${String(inf.task_id)}`);
    await page.waitForSelector('#task-head >> text=completed', { timeout: 60_000 });
    await page.waitForSelector('#class-counts');
    // 39 frames of the recording and the picture; a page of 50 holds them all.
    await page.waitForSelector('#predictions-table');
    assert.equal(await page.locator('#predictions-table tbody tr').count(), 40);
    const loaded = (sel: string) =>
      page.locator(sel).evaluate((img) => (img as { naturalWidth: number }).naturalWidth > 0);
    // The picture's annotated copy, and a frame drawn as the task sliced it.
    await waitFor(() => loaded('tr[data-file="picture.png"] img.thumb'), 10_000, "the picture's thumbnail");
    await waitFor(() => loaded('tr[data-file="drone.iq"][data-frame="3"] img.thumb'), 10_000, 'a frame');
    // A frame opens in the explorer with the model, at its offset (frame 3 starts at 0.01 s).
    await page.locator('tr[data-file="drone.iq"][data-frame="3"] a').click();
    await page.waitForURL(/\/ui\/explorer\?path=inbox%2Fdrone.iq&offset=0.01&.*model=runs%2Fr1/);
    await waitFor(
      async () => (await page.getAttribute('#slice', 'data-offset')) === '0.01',
      10_000,
      'the frame in the explorer',
    );
    await page.waitForSelector('#predicted-class');
    assert.deepEqual(problems, []);
    await page.close();
  }

  /** The explorer on a synthetic recording and the model trained above (its card's signal fields). */
  async function explorerChecks(url: string, data: string) {
    fs.mkdirSync(path.join(data, 'rec'));
    await writeRecording(path.join(data, 'rec/drone.iq'), CLASS_PROFILES[0] as ClassProfile, {
      sampleRate: SIGNAL.sample_rate,
      durationS: 0.2,
      snrDb: 10,
      seed: 2,
    });
    const labels = fs.readdirSync(path.join(data, 'set/train')).sort();
    const { page, problems } = await open(browser, `${url}/ui/explorer`);
    // Picked from the data root, as a user would.
    await page.locator('button[aria-controls="picker-path"]').click();
    await page.locator('#picker-path button[data-path="rec"]').click();
    await page.locator('#picker-path button[data-path="rec/drone.iq"]').click();
    await page.fill('#ex-model', 'runs/r1');
    await page.locator('#explorer-form button[type="submit"]').click();
    await page.waitForURL(/\/ui\/explorer\?path=rec%2Fdrone.iq&model=runs%2Fr1$/);
    await page.waitForSelector('#recording-info >> text=rec/drone.iq');
    // The signal fields come from the model card.
    assert.equal(await page.inputValue('#ex-sample_rate'), String(SIGNAL.sample_rate));
    assert.equal(await page.inputValue('#ex-stft_point'), String(SIGNAL.stft_point));
    assert.match((await page.textContent('label[for="ex-duration_time"]')) ?? '', /model card/);
    // The slice under the cursor is drawn, and classified.
    await waitFor(
      async () =>
        page.locator('#slice').evaluate((img) => (img as { naturalWidth: number }).naturalWidth > 0),
      30_000,
      'the first slice drawn',
    );
    assert.equal(await page.getAttribute('#slice', 'data-offset'), '0');
    await page.waitForSelector('#predicted-class');
    assert.ok(labels.includes((await page.textContent('#predicted-class')) ?? ''));
    assert.equal(await page.locator('#top-k tr').count(), 3);
    // Scrubbing by keyboard draws the last slice: 0.2 s in 0.01 s slices every 0.005 s.
    await page.focus('#offset');
    await page.keyboard.press('End');
    await waitFor(
      async () => (await page.getAttribute('#slice', 'data-offset')) === '0.19',
      10_000,
      'the slice at 0.19 s',
    );
    // A prediction per slice along the recording; a cell moves the cursor there.
    await page.waitForSelector('#strip[data-done="true"]', { timeout: 60_000 });
    assert.equal(await page.locator('#strip .strip-cell').count(), 39);
    assert.equal(await page.locator('#strip .strip-cell[data-class]').count(), 39);
    await page.locator('#strip .strip-cell').nth(10).click();
    await page.waitForURL(/offset=0.05/);
    await waitFor(
      async () => (await page.getAttribute('#slice', 'data-offset')) === '0.05',
      10_000,
      'the slice at 0.05 s',
    );
    // The page rebuilt from its URL alone shows the same slice.
    await page.reload();
    await waitFor(
      async () => (await page.getAttribute('#slice', 'data-offset')) === '0.05',
      10_000,
      'the slice at 0.05 s after a reload',
    );
    assert.deepEqual(problems, []);
    await page.close();
  }

  it('with tokens set, the explorer draws a slice at phone width (pictures are fetched with the token)', async () => {
    const dir = tmpDir();
    const svc = await startService(dir, { listen: true, env: { RFUAV_API_TOKENS: 'tok-x' } });
    fs.mkdirSync(path.join(svc.config.dataRoot, 'rec'), { recursive: true });
    await writeRecording(path.join(svc.config.dataRoot, 'rec/short.iq'), CLASS_PROFILES[1] as ClassProfile, {
      sampleRate: 1e6,
      durationS: 0.05,
      snrDb: 10,
      seed: 4,
    });
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('response', (r) => {
      if (r.status() >= 400 && r.status() !== 401) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.goto(
      `${svc.url}/ui/explorer?path=rec%2Fshort.iq&sample_rate=1000000&duration_time=0.01&stft_point=256`,
    );
    await page.locator('#token').fill('tok-x');
    await page.locator('#token-form button').click();
    await page.waitForSelector('#recording-info >> text=rec/short.iq');
    assert.match((await page.textContent('label[for="ex-stft_point"]')) ?? '', /set here/);
    await waitFor(
      async () =>
        page.locator('#slice').evaluate((img) => (img as { naturalWidth: number }).naturalWidth > 0),
      10_000,
      'the slice drawn',
    );
    assert.ok(
      await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1'),
      'nothing wider than the phone',
    );
    // Without a model there is nothing to classify, and the page says how to get it.
    await page.waitForSelector('text=Name a model folder above');
    assert.deepEqual(problems, []);
    await page.close();
  });

  it("with named users: the list shows owners and filters to mine; another user's task cannot be cancelled from its page", async () => {
    const gates = new Gates();
    const svc = await startService(tmpDir(), {
      listen: true,
      extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
      env: { RFUAV_API_TOKENS: 'alice:tok-a,bob:tok-b', RFUAV_ADMINS: 'alice' },
    });
    const mine = String((await post(`${svc.url}/api/v2/preprocessing/gate`, {}, 'tok-b')).task_id);
    const theirs = String((await post(`${svc.url}/api/v2/preprocessing/gate`, {}, 'tok-a')).task_id);
    const { page, problems } = await open(browser, `${svc.url}/ui/tasks`);
    await page.locator('#token').fill('tok-b');
    await page.locator('#token-form button').click();
    await page.locator(`tr[data-task="${theirs}"] td.owner >> text=alice`).waitFor();
    await page.locator(`tr[data-task="${mine}"] td.owner >> text=bob`).waitFor();
    await page.locator('#my-tasks').click();
    await page.waitForURL(/owner=me/);
    await page.locator(`tr[data-task="${theirs}"]`).waitFor({ state: 'detached' });
    assert.equal(await page.locator(`tr[data-task="${mine}"]`).count(), 1);
    await page.goto(`${svc.url}/ui/tasks/${theirs}`);
    await page.waitForSelector('#task-details >> text=alice');
    await page.locator('button', { hasText: 'Cancel' }).click();
    await page.locator('#action-error', { hasText: /belongs to alice/ }).waitFor();
    // Still there after the page's next refreshes (which redraw the buttons).
    await page.waitForTimeout(2500);
    assert.match((await page.textContent('#action-error')) ?? '', /belongs to alice/);
    assert.ok(gates.isRunning(theirs), 'still running');
    assert.deepEqual(
      problems.filter((p) => !/HTTP (401|403)/.test(p)),
      [],
    );
    await page.close();
    for (const t of gates.started) gates.release(t.id);
  });

  for (const withTokens of [false, true]) {
    it(`cancel from a task's page ends the running task${withTokens ? ' (tokens set: the page asks for one)' : ''}`, async () => {
      const dir = tmpDir();
      const gates = new Gates();
      const svc = await startService(dir, {
        listen: true,
        extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
        env: withTokens ? { RFUAV_API_TOKENS: 'tok-a,tok-b' } : {},
      });
      const task = await post(`${svc.url}/api/v2/preprocessing/gate`, {}, withTokens ? 'tok-b' : undefined);
      const id = String(task.task_id);
      const { page, problems } = await open(browser, `${svc.url}/ui/tasks/${id}`);
      if (withTokens) {
        await page.locator('#token').fill('tok-b');
        await page.locator('#token-form button').click();
      }
      await page.waitForSelector('#task-head >> text=running');
      await page.locator('#log >> text=waiting').waitFor({ timeout: 2000 });
      await page.locator('button', { hasText: 'Cancel' }).click();
      await page.waitForSelector('#task-head >> text=cancelled', { timeout: 10_000 });
      await page.locator('#log .final >> text=cancelled').waitFor({ timeout: 5000 });
      if (withTokens) {
        // The token stayed in the browser session; it never appears in a URL the page asked for.
        assert.equal(await page.evaluate('sessionStorage.getItem("rfuav-token")'), 'tok-b');
      }
      // A 401 answer before the token was entered is the one expected "error" with tokens set.
      assert.deepEqual(
        problems.filter((p) => !(withTokens && /401/.test(p))),
        [],
      );
      await page.close();
    });
  }
});
