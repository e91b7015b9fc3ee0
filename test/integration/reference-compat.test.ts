/**
 * Replays requests as the reference service's clients send them (its test page, its documented
 * examples) against a listening service, and checks every answer against the reference's shapes
 * (test/reference-contract.ts): CORS, resources, errors, preprocessing, training acceptance, log
 * levels, the routes it has, and that a hostile weight file runs no code.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { describe, it } from 'node:test';
import { writeImageFolder } from '../fixtures/images.js';
import { fakeNvidiaSmi, replayedLog, startService, tmpDir, waitFor, writePickleBomb } from '../helpers.js';
import * as ref from '../reference-contract.js';

describe("the reference's clients, replayed", async () => {
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  await writeImageFolder(path.join(data, 'data/raw_dataset'), { classes: 3, perClass: 10 });
  await writeImageFolder(path.join(data, 'data/train'), { classes: 2, perClass: 4 });
  await writeImageFolder(path.join(data, 'data/val'), { classes: 2, perClass: 2 });
  const smi = fakeNvidiaSmi(dir, [
    { totalMiB: 40960, usedMiB: 10240, util: 55, name: 'NVIDIA A100-SXM4-40GB' },
  ]);
  // No training slot anywhere: training requests are accepted and wait, so nothing trains here
  // unless a test says so.
  const svc = await startService(dir, {
    listen: true,
    env: { RFUAV_NVIDIA_SMI: smi.path, RFUAV_LIMITS: '{"cpu":{"training":0},"gpu":{"training":0}}' },
  });
  const url = svc.url;
  const call = async (
    method: string,
    route: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const r = await fetch(`${url}${route}`, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, headers: r.headers, body: text.startsWith('{') ? JSON.parse(text) : text };
  };
  const finished = (id: string) =>
    waitFor(
      async () => {
        const t = (await call('GET', `/api/v2/tasks/${id}`)).body;
        return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : null;
      },
      60_000,
      `task ${id}`,
    );

  it('answers CORS preflights (origin null from a file page) and marks every answer, streams included', async () => {
    const pre = await fetch(`${url}/api/v2/preprocessing/split`, {
      method: 'OPTIONS',
      headers: {
        origin: 'null',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,authorization',
      },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    const allowed = (pre.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['content-type', 'authorization']) assert.ok(allowed.includes(h), allowed);
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    const del = await fetch(`${url}/api/v2/tasks/x`, {
      method: 'OPTIONS',
      headers: { origin: 'null', 'access-control-request-method': 'DELETE' },
    });
    assert.match(del.headers.get('access-control-allow-methods') ?? '', /DELETE/);
    const simple = await call('GET', '/api/v1/health', undefined, { origin: 'null' });
    assert.equal(simple.headers.get('access-control-allow-origin'), '*');
    const notFound = await call('GET', '/api/v2/tasks/nope', undefined, { origin: 'null' });
    assert.equal(notFound.status, 404);
    assert.equal(notFound.headers.get('access-control-allow-origin'), '*', 'errors carry it too');
    const split = await call('POST', '/api/v2/preprocessing/split', {
      input_path: 'data/raw_dataset',
      output_path: 'data/cors_split',
    });
    const sse = await fetch(`${url}/api/v2/preprocessing/${split.body.task_id}/logs`, {
      headers: { origin: 'null' },
    });
    assert.equal(sse.headers.get('access-control-allow-origin'), '*');
    assert.match(sse.headers.get('content-type') ?? '', /text\/event-stream/);
    await sse.text();
  });

  it('restricts origins to RFUAV_CORS_ORIGINS when it is set', async () => {
    const other = await startService(tmpDir(), {
      listen: true,
      env: { RFUAV_CORS_ORIGINS: 'null,http://dash.example:8080' },
    });
    for (const [origin, allowed] of [
      ['null', 'null'],
      ['http://dash.example:8080', 'http://dash.example:8080'],
      ['http://evil.example', null],
    ] as const) {
      const r = await fetch(`${other.url}/api/v1/health`, { headers: { origin } });
      assert.equal(r.headers.get('access-control-allow-origin'), allowed, origin);
    }
  });

  it('health, info, tasks, resources, GPU and CPU in the reference shapes', async () => {
    ref.assertShape(ref.HealthResponse, (await call('GET', '/api/v1/health')).body, 'health');
    ref.assertShape(ref.InfoResponse, (await call('GET', '/api/v1/info')).body, 'info');
    ref.assertShape(ref.TaskListResponse, (await call('GET', '/api/v2/tasks?limit=20')).body, 'task list');
    const res = (await call('GET', '/api/v2/resources')).body;
    ref.assertShape(ref.ResourceStatusResponse, res, 'resources');
    const gpu = (await call('GET', '/api/v2/resources/gpu')).body;
    ref.assertShape(ref.GpuInfo, gpu, 'gpu');
    assert.deepEqual(res.gpu_info.devices, gpu.devices, 'gpu_info is the /gpu object');
    assert.equal(gpu.devices[0].compute_capability, '8.0');
    assert.equal(gpu.devices[0].allocated_memory_gb, 10);
    assert.equal(gpu.devices[0].utilization, 55);
    ref.assertShape(ref.CpuInfo, (await call('GET', '/api/v2/resources/cpu')).body, 'cpu');
    const cfg = await call('POST', '/api/v2/resources/config', { max_concurrent: { cpu: { inference: 4 } } });
    ref.assertShape(ref.ConfigUpdateResponse, cfg.body, 'config update');
  });

  it('errors carry a readable detail string and the field', async () => {
    const cases: [string, unknown, number, string, string][] = [
      ['/api/v2/preprocessing/split', { output_path: 'x' }, 422, 'input_path', 'input_path: is required'],
      [
        '/api/v2/preprocessing/split',
        { input_path: 'nope', output_path: 'x' },
        400,
        'input_path',
        "input_path: 'nope' does not exist",
      ],
      [
        '/api/v2/preprocessing/split',
        { input_path: 'data/raw_dataset', output_path: 'x', train_ratio: 0.95 },
        422,
        'train_ratio',
        'train_ratio: must be <= 0.9',
      ],
      [
        '/api/v2/training/start',
        { model: 'lenet', num_classes: 2, train_path: 'data/train', val_path: 'data/val', save_path: 'm' },
        422,
        'model',
        '',
      ],
    ];
    for (const [route, body, status, field, detail] of cases) {
      const r = await call('POST', route, body);
      assert.equal(r.status, status, JSON.stringify(r.body));
      ref.assertShape(ref.ErrorResponse, r.body, `${route} error`);
      assert.equal(r.body.field, field);
      assert.equal(typeof r.body.detail, 'string');
      if (detail) assert.equal(r.body.detail, detail);
    }
    const unknown = await call('GET', '/api/v2/tasks/nope');
    ref.assertShape(ref.ErrorResponse, unknown.body, '404');
    assert.equal(unknown.body.detail, "task 'nope' not found");
  });

  it("takes the test page's default split (0.8 + 0.2: an empty test split) and reports stats as the reference", async () => {
    const r = await call('POST', '/api/v2/preprocessing/split', {
      input_path: 'data/raw_dataset',
      output_path: 'data/split_dataset',
      train_ratio: 0.8,
      val_ratio: 0.2,
      task_id: null,
      description: null,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    ref.assertShape(ref.PreprocessingResponse, r.body, 'split response');
    const t = await finished(r.body.task_id);
    assert.equal(t.status, 'completed', t.error);
    ref.assertShape(ref.PreprocessingResponse, t, 'split task');
    ref.assertShape(ref.SplitStats, t.stats, 'split stats');
    assert.deepEqual(
      [t.stats.total_images, t.stats.train_images, t.stats.val_images, t.stats.test_images],
      [30, 24, 6, 0],
    );
    assert.deepEqual(t.stats.classes, ['left', 'right', 'top']);
    assert.deepEqual(fs.readdirSync(path.join(data, 'data/split_dataset/test/left')), []);
    // The family routes answer for it, also with a trailing slash.
    assert.equal((await call('GET', `/api/v2/preprocessing/${t.task_id}/`)).body.task_id, t.task_id);
  });

  it('augments with methods null or [] (all six), crops, and reports their stats as the reference', async () => {
    for (const [i, methods] of [null, []].entries()) {
      const r = await call('POST', '/api/v2/preprocessing/augment', {
        dataset_path: 'data/split_dataset',
        output_path: `data/augmented_${i}`,
        methods,
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const t = await finished(r.body.task_id);
      assert.equal(t.status, 'completed', t.error);
      ref.assertShape(ref.AugmentStats, t.stats, 'augment stats');
      assert.equal(t.stats.methods_used, 6);
      assert.deepEqual(t.stats.classes, ['left', 'right', 'top']);
    }
    const crop = await call('POST', '/api/v2/preprocessing/crop', {
      input_path: 'data/raw_dataset/left',
      output_path: 'data/cropped',
      x: 4,
      y: 4,
      width: 16,
      height: 16,
    });
    const c = await finished(crop.body.task_id);
    ref.assertShape(ref.CropStats, c.stats, 'crop stats');
    assert.deepEqual([c.stats.total_images, c.stats.success, c.stats.failed], [10, 10, 0]);
  });

  it('reads a JSON body sent without Content-Type, and answers routes with a trailing slash', async () => {
    const body = JSON.stringify({ input_path: 'data/raw_dataset', output_path: 'data/no_ct' });
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        `${url}/api/v2/preprocessing/split/`,
        { method: 'POST', headers: { 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(answer.status, 200, answer.body);
    assert.equal(JSON.parse(answer.body).task_type, 'dataset_split');
    ref.assertShape(ref.TaskListResponse, (await call('GET', '/api/v2/tasks/')).body, 'tasks/');
    assert.equal((await call('GET', '/api/v1/health/')).status, 200);
  });

  it('accepts num_classes above the class folders (the reference examples use 37) with a warning; cancels through preprocessing/{id}/cancel', async () => {
    const request = {
      model: 'resnet18',
      num_classes: 37,
      train_path: 'data/train',
      val_path: 'data/val',
      save_path: 'models/output',
      name: null,
      weight_path: null,
      batch_size: 16,
      num_epochs: 10,
      learning_rate: 0.0001,
      device: 'cuda',
    };
    const r = await call('POST', '/api/v2/training/start', request);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    ref.assertShape(ref.TaskResponse, r.body, 'training response');
    const log = await replayedLog(url, `/api/v2/tasks/${r.body.task_id}/logs`);
    for (const e of log) ref.assertShape(ref.DetailedLogEntry, e, 'log entry');
    assert.ok(
      log.some(
        (e) =>
          e.level === 'WARNING' &&
          /num_classes is 37 but train_path has 2 class folders: .* outputs 2-36 stay unused/.test(
            String(e.message),
          ),
      ),
      JSON.stringify(log),
    );
    const stop = await call('POST', `/api/v2/training/${r.body.task_id}/stop`);
    ref.assertShape(ref.TaskActionResponse, stop.body, 'training stop');
    const smaller = await call('POST', '/api/v2/training/start', {
      ...request,
      num_classes: 2,
      train_path: 'data/raw_dataset',
      val_path: 'data/raw_dataset',
    });
    assert.equal(smaller.status, 422, 'fewer outputs than classes stays an error');
    assert.match(smaller.body.detail, /num_classes: is 2 but train_path has 3 class folders/);

    await svc.service.changeLimits({ cpu: { preprocessing: 0 } });
    const held = await call('POST', '/api/v2/preprocessing/split', {
      input_path: 'data/raw_dataset',
      output_path: 'data/held',
    });
    const cancel = await call('POST', `/api/v2/preprocessing/${held.body.task_id}/cancel`);
    assert.equal(cancel.status, 200);
    ref.assertShape(ref.TaskActionResponse, cancel.body, 'preprocessing cancel');
    assert.deepEqual(cancel.body, {
      status: 'success',
      message: cancel.body.message,
      task_id: held.body.task_id,
    });
    assert.equal((await call('POST', `/api/v2/preprocessing/${held.body.task_id}/cancel`)).status, 409);
    assert.equal(
      (await call('POST', `/api/v2/preprocessing/${r.body.task_id}/cancel`)).status,
      404,
      'not a preprocessing task',
    );
    await svc.service.changeLimits({ cpu: { preprocessing: 2 } });
  });

  it('serves /redoc: every route of the OpenAPI document on one page, without outside scripts', async () => {
    const page = await call('GET', '/redoc');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    for (const route of ['/api/v2/training/start', '/api/v2/preprocessing/split', '/api/v2/resources/gpu'])
      assert.ok((page.body as string).includes(route), route);
    assert.match(page.body as string, /<code>train_ratio<\/code>/);
    assert.doesNotMatch(page.body as string, /<script|https?:\/\/(?!127\.0\.0\.1)/);
  });

  it('refuses a weight file that carries pickled code: the task fails saying so, and nothing runs', async () => {
    const marker = path.join(dir, 'pwned');
    writePickleBomb(path.join(data, 'evil.pth'), marker);
    await svc.service.changeLimits({ cpu: { training: 1 } });
    const r = await call('POST', '/api/v2/training/start', {
      model: 'resnet18',
      num_classes: 2,
      train_path: 'data/train',
      val_path: 'data/val',
      save_path: 'models/evil',
      weight_path: 'evil.pth',
      num_epochs: 1,
      image_size: 32,
      device: 'cpu',
      pretrained: false,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const t = await finished(r.body.task_id);
    assert.equal(t.status, 'failed');
    assert.match(t.error, /evil\.pth is not a plain weights file: .*could run code, so it was refused/);
    assert.doesNotMatch(t.error, new RegExp(dir), 'the data root is not shown');
    assert.equal(fs.existsSync(marker), false, 'the pickled call never ran');
    await svc.service.changeLimits({ cpu: { training: 0 } });
  });
});
