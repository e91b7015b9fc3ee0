import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { tmpDir } from '../helpers.js';
import { ensureBuilt, rfuav, spawnCliServer } from '../process.js';

describe('rfuav CLI against a real server', () => {
  before(ensureBuilt);

  it('serves, splits and crops with progress, lists, shows logs, and reports errors with exit codes', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    for (const cls of ['c0', 'c1']) {
      fs.mkdirSync(path.join(data, 'ds', cls), { recursive: true });
      for (let i = 0; i < 6; i++) {
        await sharp({
          create: { width: 32, height: 32, channels: 3, background: { r: i * 40, g: 10, b: 10 } },
        })
          .png()
          .toFile(path.join(data, 'ds', cls, `${i}.png`));
      }
    }
    const server = await spawnCliServer(path.join(dir, 'home'), data);
    assert.match(server.output(), /RFUAV Model Service listening on http:\/\/127\.0\.0\.1:\d+/);
    const s = ['--server', server.url];
    const second = await rfuav(
      ['serve', '--port', '0', '--home', path.join(dir, 'home'), '--data-root', data],
      {
        RFUAV_LOG_LEVEL: 'silent',
      },
    );
    assert.equal(second.code, 2);
    assert.match(second.err, /another RFUAV service is already using .*rfuav\.sqlite/);

    const split = await rfuav([
      'split',
      ...s,
      '--input',
      'ds',
      '--output',
      'split',
      '--seed',
      '5',
      '--task-id',
      'cli-split',
    ]);
    assert.equal(split.code, 0, split.err);
    assert.match(split.out, /Submitted dataset_split task cli-split/);
    assert.match(split.out, /Splitting 12 images of 2 classes into train\/valid \(seed 5\)/);
    assert.match(split.out, /Task cli-split completed: split 12 images/);
    assert.match(split.out, /stats: \{"total_images":12,"train_images":10,"val_images":2/);
    assert.match(split.err, /progress 100%/);
    assert.equal(fs.readdirSync(path.join(data, 'split/train/c0')).length, 5);

    const crop = await rfuav([
      'crop',
      ...s,
      '--input',
      'ds/c0/1.png',
      '--output',
      'crop',
      '--x',
      '30',
      '--y',
      '0',
      '--width',
      '8',
      '--height',
      '8',
    ]);
    assert.equal(crop.code, 1);
    assert.match(
      crop.out,
      /failed: no image could be cropped; 1\.png: the crop 8x8 at \(30, 0\) falls outside the 32x32 image/,
    );

    const okCrop = await rfuav([
      'crop',
      ...s,
      '--input',
      'ds',
      '--output',
      'crop2',
      '--x',
      '0',
      '--y',
      '0',
      '--width',
      '8',
      '--height',
      '8',
      '--no-follow',
    ]);
    assert.equal(okCrop.code, 0);
    assert.match(okCrop.out, /Submitted image_crop task/);

    const tasks = await rfuav(['tasks', ...s]);
    assert.equal(tasks.code, 0);
    assert.match(tasks.out, /TASK_ID\s+TYPE\s+STATUS/);
    assert.match(tasks.out, /cli-split\s+dataset_split\s+completed\s+100%\s+cpu/);
    assert.match(tasks.out, /training 0, inference 0, other 3/);

    const logs = await rfuav(['logs', ...s, 'cli-split']);
    assert.equal(logs.code, 0);
    assert.match(logs.out, /Task accepted: dataset_split/);
    assert.match(logs.out, /Task cli-split completed/);
    const follow = await rfuav(['logs', '-f', ...s, 'cli-split']);
    assert.equal(follow.code, 0);
    assert.match(follow.out, /Task cli-split completed/);

    const cancel = await rfuav(['cancel', ...s, 'cli-split']);
    assert.equal(cancel.code, 1);
    assert.match(cancel.err, /409: task 'cli-split' has already finished \(completed\)/);
    const missing = await rfuav(['cancel', ...s, 'nope']);
    assert.match(missing.err, /404/);

    const usage = await rfuav(['split', ...s, '--output', 'x']);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /--input is required/);
    const badPath = await rfuav(['split', ...s, '--input', '../outside', '--output', 'x']);
    assert.equal(badPath.code, 1);
    assert.match(badPath.err, /400: input_path: '\.\.' is not allowed in paths/);
    const down = await rfuav(['tasks', '--server', 'http://127.0.0.1:9']);
    assert.equal(down.code, 1);
    assert.match(down.err, /cannot reach the service/);
  });

  it("refuses 'serve --host 0.0.0.0' without tokens, with a message saying how to proceed", async () => {
    const dir = tmpDir();
    const r = await rfuav(
      [
        'serve',
        '--host',
        '0.0.0.0',
        '--port',
        '0',
        '--home',
        path.join(dir, 'h'),
        '--data-root',
        path.join(dir, 'd'),
      ],
      {
        RFUAV_API_TOKENS: '',
        RFUAV_LOG_LEVEL: 'silent',
      },
    );
    assert.equal(r.code, 2);
    assert.match(r.err, /refusing to listen on 0\.0\.0\.0 without API tokens/);
  });

  it('sends a bearer token from --token, RFUAV_TOKEN or the first of RFUAV_API_TOKENS', async () => {
    const dir = tmpDir();
    const server = await spawnCliServer(path.join(dir, 'home'), path.join(dir, 'data'), {
      RFUAV_API_TOKENS: 'tok-a,tok-b',
    });
    const s = ['--server', server.url];
    const none = await rfuav(['tasks', ...s], { RFUAV_API_TOKENS: '', RFUAV_TOKEN: '' });
    assert.equal(none.code, 1);
    assert.match(none.err, /401: a valid bearer token is required/);
    assert.equal((await rfuav(['tasks', ...s, '--token', 'tok-b'], { RFUAV_API_TOKENS: '' })).code, 0);
    assert.equal((await rfuav(['tasks', ...s], { RFUAV_TOKEN: 'tok-a', RFUAV_API_TOKENS: '' })).code, 0);
    assert.equal((await rfuav(['tasks', ...s], { RFUAV_API_TOKENS: 'tok-a,tok-b' })).code, 0);
  });

  it("lists the team and changes a user's quotas live (admins), with usage errors for bad values", async () => {
    const dir = tmpDir();
    const server = await spawnCliServer(path.join(dir, 'home'), path.join(dir, 'data'), {
      RFUAV_API_TOKENS: 'alice:tok-a,bob:tok-b',
      RFUAV_ADMINS: 'alice',
      RFUAV_QUOTAS: '{"queued":10}',
    });
    const s = ['--server', server.url, '--token', 'tok-a'];
    const env = { RFUAV_API_TOKENS: '', RFUAV_TOKEN: '' };
    const set = await rfuav(
      ['users', 'bob', ...s, '--running', 'training=2,inference=none', '--queued', 'none'],
      env,
    );
    assert.equal(set.code, 0, set.err);
    assert.match(set.out, /^bob: training 2 \(configured: queued 10\)$/m);
    const list = await rfuav(['users', ...s], env);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /^USER\s+ROLE/m);
    assert.match(list.out, /^alice\s+admin\s+1\s+0\s+0\s+0\.0\s+1\.00\s+queued 10$/m);
    assert.match(list.out, /^bob\s+user\s+.*training 2$/m);
    const reset = await rfuav(['users', 'bob', ...s, '--reset'], env);
    assert.match(reset.out, /^bob: queued 10 \(configured: queued 10\)$/m);
    const notAdmin = await rfuav(
      ['users', 'alice', '--server', server.url, '--token', 'tok-b', '--queued', '1'],
      env,
    );
    assert.equal(notAdmin.code, 1);
    assert.match(notAdmin.err, /403: only an admin may/);
    const bad = await rfuav(['users', 'bob', ...s, '--running', 'gaming=1'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--running takes CLASS=N/);
    const negative = await rfuav(['users', 'bob', ...s, '--queued', '-3'], env);
    assert.equal(negative.code, 2);
    assert.match(negative.err, /--queued takes a whole number ≥ 0, or none/);
  });
});
