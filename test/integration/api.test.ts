import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { Gates } from '../gate-job.js';
import { fakeNvidiaSmi, startService, tmpDir, waitFor } from '../helpers.js';

async function makeDataset(root: string, classes: string[], perClass: number): Promise<void> {
  for (const [ci, cls] of classes.entries()) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      await sharp({
        create: { width: 40, height: 30, channels: 3, background: { r: ci * 80, g: i * 20, b: 90 } },
      })
        .png()
        .toFile(path.join(root, cls, `img_${String(i).padStart(2, '0')}.png`));
    }
  }
}

describe('HTTP API', async () => {
  const dir = tmpDir();
  const gates = new Gates();
  const svc = await startService(dir, { extraJobs: [gates.job('gate', 'preprocessing', 'gate')] });
  const app = svc.app;
  const dataRoot = svc.config.dataRoot;
  await makeDataset(path.join(dataRoot, 'ds'), ['alpha', 'beta', 'gamma'], 10);
  const post = (url: string, payload: unknown) =>
    app.inject({ method: 'POST', url, payload: payload as object });
  const json = (r: { body: string }) => JSON.parse(r.body);

  const waitDone = (id: string) =>
    waitFor(
      async () => {
        const t = json(await app.inject({ method: 'GET', url: `/api/v2/tasks/${id}` }));
        return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : null;
      },
      10_000,
      `task ${id} to finish`,
    );

  it('GET /api/v1/health, /info, / and /metrics answer with their documented shapes', async () => {
    const h = json(await app.inject({ url: '/api/v1/health' }));
    assert.equal(h.status, 'healthy');
    for (const k of [
      'timestamp',
      'version',
      'training_tasks',
      'inference_tasks',
      'active_log_streams',
      'resource_status',
    ]) {
      assert.ok(k in h, k);
    }
    const ready = await app.inject({ url: '/api/v1/health/ready' });
    assert.equal(ready.statusCode, 200);
    const info = json(await app.inject({ url: '/api/v1/info' }));
    assert.equal(info.app_name, 'RFUAV Model Service');
    assert.equal(info.supported_models.length, 14);
    assert.equal(info.gpu_available, false);
    assert.deepEqual(info.resource_limits.cpu, { training: 2, inference: 4, preprocessing: 2 });
    const root = json(await app.inject({ url: '/', headers: { accept: 'application/json' } }));
    assert.equal(root.name, 'RFUAV Model Service');
    assert.ok(root.endpoints.docs);
    const html = await app.inject({ url: '/', headers: { accept: 'text/html' } });
    assert.equal(html.statusCode, 302);
    assert.equal(html.headers.location, '/ui/');
    const ui = await app.inject({ url: '/ui/' });
    assert.match(ui.headers['content-type'] as string, /text\/html/);
    assert.match(ui.body, /RFUAV Model Service/);
    const metrics = await app.inject({ url: '/metrics' });
    assert.match(metrics.body, /rfuav_http_request_duration_seconds_bucket\{.*route="\/api\/v1\/health"/);
    assert.match(metrics.body, /rfuav_queue_length \d+/);
    assert.match(metrics.body, /rfuav_slots_in_use\{device="cpu",class="preprocessing"\}/);
    // The process's own figures (prom-client's default set) and task durations per kind.
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_gc_duration_seconds',
    ]) {
      assert.match(metrics.body, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    assert.match(metrics.body, /^# TYPE rfuav_task_duration_seconds histogram/m);
  });

  it('serves /openapi.json generated from the route schemas, and the /docs UI', async () => {
    const doc = json(await app.inject({ url: '/openapi.json' }));
    const split = doc.paths['/api/v2/preprocessing/split'].post;
    const props = split.requestBody.content['application/json'].schema.properties;
    assert.ok(props.train_ratio && props.input_path && props.task_id);
    assert.equal(props.train_ratio.maximum, 0.9);
    assert.ok(doc.paths['/api/v2/resources/config']);
    const ui = await app.inject({ url: '/docs/' });
    assert.equal(ui.statusCode, 200);
    assert.match(ui.body, /swagger/i);
  });

  it('runs a three-way split end to end with the stats of SPEC §2.5, reproducibly for a seed', async () => {
    const r = await post('/api/v2/preprocessing/split', {
      input_path: 'ds',
      output_path: 'splits/s1',
      train_ratio: 0.6,
      val_ratio: 0.2,
      seed: 11,
      task_id: 'split-1',
      description: 'three way',
    });
    assert.equal(r.statusCode, 200, r.body);
    const t = json(r);
    assert.equal(t.task_id, 'split-1');
    assert.equal(t.task_type, 'dataset_split');
    assert.ok(['pending', 'queued', 'running', 'completed'].includes(t.status));
    const done = await waitDone('split-1');
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.progress, 100);
    assert.equal(done.device, 'cpu');
    assert.equal(done.attempts, 1);
    assert.deepEqual(
      { ...done.stats, per_class: undefined, seed: undefined },
      {
        total_images: 30,
        train_images: 18,
        val_images: 6,
        test_images: 6,
        classes: ['alpha', 'beta', 'gamma'],
        num_classes: 3,
        per_class: undefined,
        seed: undefined,
      },
    );
    const out = path.join(dataRoot, 'splits/s1');
    for (const s of ['train', 'valid', 'test']) {
      assert.deepEqual(fs.readdirSync(path.join(out, s)).sort(), ['alpha', 'beta', 'gamma']);
    }
    assert.equal(fs.readdirSync(path.join(out, 'train', 'beta')).length, 6);
    // same seed → same split; the preprocessing route serves it too
    await post('/api/v2/preprocessing/split', {
      input_path: 'ds',
      output_path: 'splits/s2',
      train_ratio: 0.6,
      val_ratio: 0.2,
      seed: 11,
      task_id: 'split-2',
    });
    await waitDone('split-2');
    for (const cls of ['alpha', 'beta', 'gamma']) {
      assert.deepEqual(
        fs.readdirSync(path.join(dataRoot, 'splits/s2/test', cls)).sort(),
        fs.readdirSync(path.join(out, 'test', cls)).sort(),
      );
    }
    const viaPre = json(await app.inject({ url: '/api/v2/preprocessing/split-1' }));
    assert.equal(viaPre.status, 'completed');
  });

  it('crops a folder, reporting images outside the crop per file without failing the task', async () => {
    fs.mkdirSync(path.join(dataRoot, 'mixed'), { recursive: true });
    await sharp({ create: { width: 100, height: 100, channels: 3, background: '#336699' } })
      .png()
      .toFile(path.join(dataRoot, 'mixed/big.png'));
    await sharp({ create: { width: 20, height: 20, channels: 3, background: '#996633' } })
      .png()
      .toFile(path.join(dataRoot, 'mixed/small.png'));
    fs.writeFileSync(path.join(dataRoot, 'mixed/broken.jpg'), 'not really a jpeg');
    const r = await post('/api/v2/preprocessing/crop', {
      input_path: 'mixed',
      output_path: 'cropped',
      x: 10,
      y: 10,
      width: 50,
      height: 40,
      task_id: 'crop-1',
      priority: 2,
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(json(r).parameters, {
      input_path: 'mixed',
      output_path: 'cropped',
      x: 10,
      y: 10,
      width: 50,
      height: 40,
    });
    assert.equal(json(r).priority, 2);
    const done = await waitDone(json(r).task_id);
    assert.equal(done.status, 'completed');
    assert.equal(done.stats.total_images, 3);
    assert.equal(done.stats.success, 1);
    assert.equal(done.stats.failed, 2);
    assert.match(JSON.stringify(done.stats.failures), /small\.png.*falls outside the 20x20 image/);
    const meta = await sharp(path.join(dataRoot, 'cropped/big.png')).metadata();
    assert.deepEqual([meta.width, meta.height], [50, 40]);
  });

  it('keeps split and crop outputs inside their output folder when it holds symbolic links', async () => {
    // A crop output that is a link back onto its own input: refused per file, the input intact.
    fs.mkdirSync(path.join(dataRoot, 'cropped2'));
    fs.symlinkSync(path.join(dataRoot, 'mixed/big.png'), path.join(dataRoot, 'cropped2/big.png'));
    const before = fs.readFileSync(path.join(dataRoot, 'mixed/big.png'));
    const crop = await post('/api/v2/preprocessing/crop', {
      input_path: 'mixed',
      output_path: 'cropped2',
      x: 0,
      y: 0,
      width: 10,
      height: 10,
    });
    const c = await waitDone(json(crop).task_id);
    assert.equal(c.status, 'completed');
    assert.match(
      JSON.stringify(c.stats.failures),
      /big\.png.*output_path: 'cropped2\/big\.png' leads out of output_path through a symbolic link/,
    );
    assert.deepEqual(fs.readFileSync(path.join(dataRoot, 'mixed/big.png')), before);
    // A split whose train folder leads out of the data root: the task fails, nothing is written there.
    const outside = path.join(dir, 'outside-split');
    fs.mkdirSync(outside);
    fs.mkdirSync(path.join(dataRoot, 'splits/linked'), { recursive: true });
    fs.symlinkSync(outside, path.join(dataRoot, 'splits/linked/train'));
    const split = await post('/api/v2/preprocessing/split', {
      input_path: 'ds',
      output_path: 'splits/linked',
      train_ratio: 0.8,
    });
    assert.equal(split.statusCode, 200, split.body);
    const sp = await waitDone(json(split).task_id);
    assert.equal(sp.status, 'failed');
    assert.match(sp.error, /output_path: 'splits\/linked\/train\/alpha' leads outside the data root/);
    assert.ok(!sp.error.includes(dir), 'no absolute server path in the error');
    assert.deepEqual(fs.readdirSync(outside), []);
  });

  it('answers malformed and hostile requests with 4xx JSON errors naming the problem', async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ output_path: 'x' }, 422, /input_path: is required/],
      [{ input_path: 'ds', output_path: 'x', train_ratio: 1.5 }, 422, /train_ratio: must be <= 0.9/],
      [{ input_path: 'ds', output_path: 'x', train_ratio: '0.5' }, 422, /train_ratio: must be number/],
      [
        { input_path: 'ds', output_path: 'x', val_ratio: 0.3 },
        422,
        /val_ratio: train_ratio \+ val_ratio is 1\.1; it must not exceed 1/,
      ],
      [{ input_path: 'ds', output_path: 'x', priority: 0 }, 422, /priority: must be >= 1/],
      [{ input_path: 'ds', output_path: 'x', task_id: 'has space' }, 422, /task_id: must match pattern/],
      [{ input_path: '../../etc', output_path: 'x' }, 400, /input_path: '\.\.' is not allowed/],
      [{ input_path: '/etc', output_path: 'x' }, 400, /input_path: '\/etc' is outside the data root/],
      [
        { input_path: 'ds', output_path: '/tmp/evil' },
        400,
        /output_path: '\/tmp\/evil' is outside the data root/,
      ],
      [{ input_path: 'missing', output_path: 'x' }, 400, /input_path: 'missing' does not exist/],
      [{ input_path: 'ds', output_path: 'ds/inner' }, 400, /output_path: must not be inside input_path/],
      [
        { input_path: 'ds/alpha/img_00.png', output_path: 'x' },
        400,
        /input_path: 'ds\/alpha\/img_00.png' is not a folder/,
      ],
      [
        { input_path: 'ds', output_path: 'ds/alpha/img_00.png' },
        400,
        /output_path: .ds\/alpha\/img_00.png. exists and is not a folder/,
      ],
      [[1, 2, 3], 422, /body/],
      ['"just a string"', 422, /body/],
    ];
    for (const [payload, code, re] of cases) {
      const r = await app.inject({
        method: 'POST',
        url: '/api/v2/preprocessing/split',
        headers: { 'content-type': 'application/json' },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
      assert.equal(r.statusCode, code, `${JSON.stringify(payload)} → ${r.body}`);
      const b = json(r);
      assert.equal(b.status, 'error');
      assert.match(b.message, re);
      assert.ok(b.timestamp);
      assert.ok(!/at .*\.ts:\d+/.test(r.body), 'no stack traces');
    }
    const bad = await app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/split',
      headers: { 'content-type': 'application/json' },
      payload: '{"input_path": ',
    });
    assert.equal(bad.statusCode, 400);
    assert.match(json(bad).message, /not valid JSON/);
    const xml = await app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/split',
      headers: { 'content-type': 'application/xml' },
      payload: '<a/>',
    });
    assert.equal(xml.statusCode, 415);
    assert.match(json(xml).message, /unsupported content type/);
    const big = await app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/split',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ input_path: 'x'.repeat(2 * 1024 * 1024) }),
    });
    assert.equal(big.statusCode, 413);
    assert.equal(json(big).status, 'error');
    const crop = await post('/api/v2/preprocessing/crop', {
      input_path: 'ds',
      output_path: 'c',
      x: -1,
      y: 0,
      width: 0,
      height: 5,
    });
    assert.equal(crop.statusCode, 422);
    const nothing = await app.inject({ url: '/api/v2/nope' });
    assert.equal(nothing.statusCode, 404);
    assert.equal(json(nothing).status, 'error');
    // the server is still fine
    assert.equal((await app.inject({ url: '/api/v1/health' })).statusCode, 200);
  });

  it('refuses a reused task_id with 409 and leaves the first task untouched', async () => {
    const a = await post('/api/v2/preprocessing/gate', { task_id: 'same-id', label: 'first' });
    assert.equal(a.statusCode, 200);
    const b = await post('/api/v2/preprocessing/gate', { task_id: 'same-id', label: 'second' });
    assert.equal(b.statusCode, 409);
    assert.match(json(b).message, /task_id 'same-id' is already in use/);
    const t = json(await app.inject({ url: '/api/v2/tasks/same-id' }));
    assert.deepEqual(t.parameters, { label: 'first' });
    await waitFor(() => gates.isRunning('same-id'));
    gates.release('same-id');
    await waitDone('same-id');
  });

  it('refuses a node pin without a cluster, and a node name that is not one, naming the field', async () => {
    const alone = await post('/api/v2/preprocessing/gate', { label: 'x', node: 'gpu-1' });
    assert.equal(alone.statusCode, 422, alone.body);
    assert.equal(json(alone).field, 'node');
    assert.match(
      json(alone).message,
      /there is no node 'gpu-1': this service runs alone \(no DATABASE_URL\)/,
    );
    const bad = await post('/api/v2/preprocessing/gate', { label: 'x', node: '../etc' });
    assert.equal(bad.statusCode, 422, bad.body);
    assert.equal(json(bad).field, 'node');
  });

  it('ignores unknown body fields consistently and notes them in the task log', async () => {
    const r = await post('/api/v2/preprocessing/gate', {
      task_id: 'extra-fields',
      label: 'x',
      colour: 'blue',
    });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(json(r).parameters, { label: 'x' });
    await waitFor(() => gates.isRunning('extra-fields'));
    gates.release('extra-fields');
    await waitDone('extra-fields');
    const logs = await svc.store.readLogs('extra-fields', 0, 100);
    assert.ok(logs.some((l) => /Ignored unknown request field\(s\): colour/.test(l.message)));
  });

  it('lists tasks in the reference shape, newest first, filtered and limited', async () => {
    const list = json(await app.inject({ url: '/api/v2/tasks?limit=2' }));
    for (const k of [
      'training_tasks',
      'inference_tasks',
      'other_tasks',
      'total_training',
      'total_inference',
      'total_other',
    ]) {
      assert.ok(k in list, k);
    }
    assert.equal(list.other_tasks.length, 2);
    assert.ok(list.total_other >= 5);
    const newest = list.other_tasks[0].created_at;
    assert.ok(newest >= list.other_tasks[1].created_at);
    const splits = json(await app.inject({ url: '/api/v2/tasks?task_type=dataset_split&status=completed' }));
    assert.ok(splits.other_tasks.every((t: { task_type: string }) => t.task_type === 'dataset_split'));
    assert.equal(splits.total_other, splits.other_tasks.length);
    // the reference's clients send empty filters: they mean "no filter"
    const blank = await app.inject({ url: '/api/v2/tasks?status=&task_type=&limit=100' });
    assert.equal(blank.statusCode, 200, blank.body);
    assert.equal(json(blank).total_other, list.total_other);
    const bad = await app.inject({ url: '/api/v2/tasks?status=sleeping' });
    assert.equal(bad.statusCode, 422);
    assert.match(json(bad).message, /status/);
    // Pages: after a task (before=), or by offset; and ids by their start (q=).
    const ids = (r: { body: string }) => json(r).other_tasks.map((t: { task_id: string }) => t.task_id);
    const all = ids(await app.inject({ url: '/api/v2/tasks?limit=1000' }));
    assert.deepEqual(
      ids(await app.inject({ url: `/api/v2/tasks?limit=2&before=${all[1]}` })),
      all.slice(2, 4),
    );
    assert.deepEqual(ids(await app.inject({ url: '/api/v2/tasks?limit=2&offset=1' })), all.slice(1, 3));
    // Time-ordered ids made in the same few milliseconds share their start: take the
    // shortest start (8 characters at least) that no other task's id has.
    let n = 8;
    while (all.some((id: string) => id !== all[3] && id.startsWith(all[3].slice(0, n)))) n += 1;
    assert.deepEqual(ids(await app.inject({ url: `/api/v2/tasks?q=${all[3].slice(0, n)}` })), [all[3]]);
  });

  it('cancels waiting and running tasks; 404 for unknown ids, 409 once finished; deletes finished ones', async () => {
    await app.inject({
      method: 'POST',
      url: '/api/v2/resources/config',
      payload: { max_concurrent: { cpu: { preprocessing: 1 } } },
    });
    await post('/api/v2/preprocessing/gate', { task_id: 'run-me' });
    await post('/api/v2/preprocessing/gate', { task_id: 'wait-me' });
    await waitFor(() => gates.isRunning('run-me'));
    const waiting = await waitFor(async () => {
      const t = json(await app.inject({ url: '/api/v2/tasks/wait-me' }));
      return t.status === 'queued' ? t : null;
    });
    assert.equal(waiting.queue_position, 1);
    assert.match(
      waiting.pending_reason,
      /waiting for a preprocessing slot on cpu \(cpu 1\/1 in use, held by task run-me\)/,
    );
    const c1 = await app.inject({ method: 'POST', url: '/api/v2/tasks/wait-me/cancel' });
    assert.equal(c1.statusCode, 200);
    assert.equal(json(c1).status, 'success');
    assert.equal(json(await app.inject({ url: '/api/v2/tasks/wait-me' })).status, 'cancelled');
    const c2 = await app.inject({ method: 'POST', url: '/api/v2/tasks/run-me/cancel' });
    assert.equal(json(c2).message, 'Task cancelled');
    assert.ok(gates.stopped.includes('run-me'));
    const t = json(await app.inject({ url: '/api/v2/tasks/run-me' }));
    assert.equal(t.status, 'cancelled');
    assert.ok(t.finished_at);
    assert.equal((await app.inject({ method: 'POST', url: '/api/v2/tasks/run-me/cancel' })).statusCode, 409);
    assert.equal((await app.inject({ method: 'POST', url: '/api/v2/tasks/ghost/cancel' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/api/v2/tasks/ghost' })).statusCode, 404);
    await post('/api/v2/preprocessing/gate', { task_id: 'busy' });
    await waitFor(() => gates.isRunning('busy'));
    const del409 = await app.inject({ method: 'DELETE', url: '/api/v2/tasks/busy' });
    assert.equal(del409.statusCode, 409);
    gates.release('busy');
    await waitDone('busy');
    const del = await app.inject({ method: 'DELETE', url: '/api/v2/tasks/run-me' });
    assert.equal(del.statusCode, 200);
    assert.equal((await app.inject({ url: '/api/v2/tasks/run-me' })).statusCode, 404);
    assert.deepEqual(await svc.store.readLogs('run-me', 0, 10), []);
  });

  it('reports resources, CPU and GPU information', async () => {
    const r = json(await app.inject({ url: '/api/v2/resources' }));
    for (const k of ['device_usage', 'active_tasks', 'limits', 'gpu_info', 'queue']) assert.ok(k in r, k);
    assert.deepEqual(Object.keys(r.device_usage), ['cpu']);
    assert.equal(typeof r.queue.length, 'number');
    const cpu = json(await app.inject({ url: '/api/v2/resources/cpu' }));
    for (const k of [
      'percent',
      'per_cpu_percent',
      'cores',
      'physical_cores',
      'freq_mhz',
      'load_avg',
      'memory_percent',
    ]) {
      assert.ok(k in cpu, k);
    }
    assert.ok(cpu.cores >= 1);
    assert.deepEqual(Object.keys(cpu.load_avg), ['1', '5', '15']);
    assert.equal(typeof cpu.load_avg['1'], 'number');
    const gpu = json(await app.inject({ url: '/api/v2/resources/gpu' }));
    assert.equal(gpu.available, false);
    assert.equal(gpu.count, 0);
    assert.deepEqual(gpu.devices, []);
    assert.equal(gpu.cuda_version, null);
    assert.deepEqual(r.gpu_info.devices, []);
  });

  it('/metrics: per-GPU utilisation and memory from nvidia-smi, and how long each kind of task took', async () => {
    const smi = fakeNvidiaSmi(tmpDir(), [
      { totalMiB: 16384, usedMiB: 4096, util: 37, name: 'NVIDIA Fake A100' },
    ]);
    const gpuSvc = await startService(tmpDir(), { env: { RFUAV_NVIDIA_SMI: smi.path } });
    const body = (await gpuSvc.app.inject({ url: '/metrics' })).body;
    assert.match(body, /^rfuav_gpu_utilization_ratio\{gpu="cuda:0",name="NVIDIA Fake A100"\} 0\.37$/m);
    assert.match(
      body,
      new RegExp(`^rfuav_gpu_memory_used_bytes\\{gpu="cuda:0",[^}]*\\} ${4096 * 1024 ** 2}$`, 'm'),
    );
    assert.match(
      body,
      new RegExp(`^rfuav_gpu_memory_total_bytes\\{gpu="cuda:0",[^}]*\\} ${16384 * 1024 ** 2}$`, 'm'),
    );
    // The splits of the tests above ended: their durations are counted per kind and status.
    const m = /^rfuav_task_duration_seconds_count\{kind="dataset_split",status="completed"\} (\d+)$/m.exec(
      (await app.inject({ url: '/metrics' })).body,
    );
    assert.ok(m && Number(m[1]) >= 1, 'split durations observed');
  });

  it('GET /api/v2/files lists a folder of the data root, and nothing outside it', async () => {
    fs.symlinkSync('/etc', path.join(dataRoot, 'escape'));
    fs.symlinkSync(path.join(dataRoot, 'ds'), path.join(dataRoot, 'ds-link'));
    const list = (q: string) => app.inject({ url: `/api/v2/files${q}` });
    const root = json(await list(''));
    assert.equal(root.path, '.');
    const names = root.entries.map((e: { name: string }) => e.name);
    assert.ok(names.includes('ds') && names.includes('ds-link'), names.join());
    assert.ok(!names.includes('escape'), 'a link out of the root is not listed');
    const ds = json(await list('?path=ds'));
    assert.deepEqual(
      ds.entries.map((e: { path: string; type: string }) => [e.path, e.type]),
      [
        ['ds/alpha', 'dir'],
        ['ds/beta', 'dir'],
        ['ds/gamma', 'dir'],
      ],
    );
    const files = json(await list('?path=ds/alpha')).entries;
    assert.equal(files.length, 10);
    assert.equal(files[0].type, 'file');
    assert.ok(files[0].size > 0);
    for (const [q, status, message] of [
      ['?path=../', 400, /^path: '..' is not allowed/],
      ['?path=/etc', 400, /outside the data root/],
      ['?path=escape', 400, /outside the data root/],
      ['?path=nope', 404, /^path: 'nope' does not exist/],
      ['?path=ds/alpha/img_00.png', 400, /is a file, not a folder/],
    ] as const) {
      const r = await list(q);
      assert.equal(r.statusCode, status, `${q}: ${r.body}`);
      assert.match(json(r).message, message, q);
    }
  });

  it('GET /api/v2/files/content serves pictures and text outputs of the data root, nothing else', async () => {
    fs.writeFileSync(path.join(dataRoot, 'out.json'), '{"a":1}');
    fs.writeFileSync(path.join(dataRoot, 'page.html'), '<script>alert(1)</script>');
    fs.writeFileSync(path.join(dataRoot, 'rec.iq'), Buffer.alloc(64));
    if (!fs.existsSync(path.join(dataRoot, 'escape'))) fs.symlinkSync('/etc', path.join(dataRoot, 'escape'));
    const get = (q: string) => app.inject({ url: `/api/v2/files/content?path=${encodeURIComponent(q)}` });
    const png = await get('ds/alpha/img_00.png');
    assert.equal(png.statusCode, 200);
    assert.equal(png.headers['content-type'], 'image/png');
    assert.equal(png.headers['x-content-type-options'], 'nosniff');
    assert.match(String(png.headers['content-security-policy']), /default-src 'none'; sandbox/);
    assert.deepEqual(png.rawPayload, fs.readFileSync(path.join(dataRoot, 'ds/alpha/img_00.png')));
    const out = await get('out.json');
    assert.equal(out.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual(json(out), { a: 1 });
    for (const [q, status, message] of [
      ['page.html', 400, /is not a file this route serves/],
      ['rec.iq', 400, /is not a file this route serves/],
      ['ds', 400, /is not a file/],
      ['nope.png', 404, /does not exist/],
      ['../etc/passwd', 400, /is not allowed/],
      ['escape/passwd', 400, /outside the data root/],
    ] as const) {
      const r = await get(q);
      assert.equal(r.statusCode, status, `${q}: ${r.body}`);
      assert.match(json(r).message, message, q);
    }
  });

  it('changes limits live: validated, persisted, and waiting work starts at once', async () => {
    await app.inject({
      method: 'POST',
      url: '/api/v2/resources/config',
      payload: { max_concurrent: { cpu: { preprocessing: 0 } } },
    });
    await post('/api/v2/preprocessing/gate', { task_id: 'held-1' });
    await post('/api/v2/preprocessing/gate', { task_id: 'held-2' });
    const w = await waitFor(async () => {
      const t = json(await app.inject({ url: '/api/v2/tasks/held-2' }));
      return t.status === 'queued' ? t : null;
    });
    assert.match(w.pending_reason, /limit 0/);
    const bad = await app.inject({
      method: 'POST',
      url: '/api/v2/resources/config',
      payload: { max_concurrent: { 'cuda:0': { training: 1 } } },
    });
    assert.equal(bad.statusCode, 422);
    assert.match(json(bad).message, /max_concurrent.cuda:0: this node has no device cuda:0/);
    const bad2 = await app.inject({
      method: 'POST',
      url: '/api/v2/resources/config',
      payload: { max_concurrent: { cpu: { training: -1 } } },
    });
    assert.equal(bad2.statusCode, 422);
    for (const dev of ['CPU', 'tpu', 'x']) {
      const r = await app.inject({
        method: 'POST',
        url: '/api/v2/resources/config',
        payload: { max_concurrent: { [dev]: { training: 1 } } },
      });
      assert.equal(r.statusCode, 422, `${dev}: ${r.body}`);
      assert.match(json(r).message, new RegExp(`max_concurrent.${dev}: is not a known field here`));
    }
    const wrongType = await app.inject({
      method: 'POST',
      url: '/api/v2/resources/config',
      payload: { max_concurrent: { cpu: { training: true } } },
    });
    assert.equal(wrongType.statusCode, 422);
    const bad3 = await app.inject({
      method: 'POST',
      url: '/api/v2/resources/config',
      payload: { max_concurrent: { cpu: { rendering: 1 } } },
    });
    assert.equal(bad3.statusCode, 422);
    assert.match(json(bad3).message, /max_concurrent.cpu.rendering: is not a known field here/);
    const ok = await app.inject({
      method: 'POST',
      url: '/api/v2/resources/config',
      payload: { max_concurrent: { cpu: { preprocessing: 2 } } },
    });
    assert.equal(ok.statusCode, 200);
    assert.equal(json(ok).current_config.cpu.preprocessing, 2);
    await waitFor(() => gates.isRunning('held-1') && gates.isRunning('held-2'), 2000, 'both to start');
    assert.deepEqual(await svc.store.getLimitOverrides(), { cpu: { preprocessing: 2 } });
    gates.release('held-1');
    gates.release('held-2', 'fail');
    const failed = await waitDone('held-2');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error, 'gate job failed on purpose');
  });
});
