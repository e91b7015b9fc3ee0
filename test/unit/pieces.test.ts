import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseLimitSpec } from '../../src/config.js';
import { parseNvidiaSmi, toDevices } from '../../src/devices/gpu.js';
import { splitCounts } from '../../src/jobs/split.js';
import { effectiveLimits, mergeSpecs } from '../../src/scheduler/limits.js';
import { mulberry32, shuffle } from '../../src/util/random.js';
import { hashToken, newToken } from '../../src/util/users.js';

describe('nvidia-smi parsing', () => {
  it('reads index, name, memory (MiB → GB) and utilization; skips junk lines', () => {
    const gpus = parseNvidiaSmi(
      '1, NVIDIA A100-SXM4-40GB, 40960, 1024, 39936, 7, 8.0\nnot a gpu line\n0, NVIDIA GeForce RTX 4090, 24564, 0, 24564, [N/A]\n',
    );
    assert.equal(gpus.length, 2);
    assert.deepEqual(gpus[0], {
      index: 0,
      name: 'NVIDIA GeForce RTX 4090',
      totalMemoryGb: 24564 / 1024,
      usedMemoryGb: 0,
      freeMemoryGb: 24564 / 1024,
      utilization: null,
      computeCapability: null,
    });
    assert.equal(gpus[1]?.utilization, 7);
    assert.equal(gpus[1]?.computeCapability, '8.0');
    assert.deepEqual(
      toDevices(gpus).map((d) => d.id),
      ['cpu', 'cuda:0', 'cuda:1'],
    );
  });
});

describe('limits', () => {
  const devices = toDevices(parseNvidiaSmi('0, G0, 1000, 0, 1000, 0\n1, G1, 1000, 0, 1000, 0\n'));
  it('defaults to SPEC §1 and layers overrides, generic GPU key before a specific one', () => {
    const l = effectiveLimits(
      devices,
      { gpu: { inference: 5 }, 'cuda:1': { inference: 1 } },
      { cpu: { training: 0 } },
    );
    assert.deepEqual(l.cpu, { training: 0, inference: 4, preprocessing: 2 });
    assert.deepEqual(l['cuda:0'], { training: 1, inference: 5, preprocessing: 0 });
    assert.deepEqual(l['cuda:1'], { training: 1, inference: 1, preprocessing: 0 });
  });
  it('a later generic change supersedes earlier per-GPU values for the same class', () => {
    const merged = mergeSpecs({ 'cuda:1': { inference: 1, training: 2 } }, { gpu: { inference: 2 } });
    assert.deepEqual(merged, { 'cuda:1': { training: 2 }, gpu: { inference: 2 } });
    assert.equal(effectiveLimits(devices, merged)['cuda:1']?.inference, 2);
  });
  it('rejects malformed limit specs with a clear message', () => {
    assert.throws(() => parseLimitSpec('{"tpu":{"training":1}}', 'X'), /unknown device 'tpu'/);
    assert.throws(() => parseLimitSpec('{"cpu":{"training":-1}}', 'X'), /integer 0–1000/);
    assert.throws(() => parseLimitSpec('nope', 'X'), ConfigError);
  });
});

describe('config', () => {
  it('validates numbers and enumerations once, with the variable named', () => {
    assert.throws(() => loadConfig({ RFUAV_PORT: 'eighty' }), /RFUAV_PORT must be a number/);
    assert.throws(() => loadConfig({ RFUAV_CUDA_FALLBACK: 'maybe' }), /RFUAV_CUDA_FALLBACK/);
    const c = loadConfig({ RFUAV_API_TOKENS: ' a, b ,', RFUAV_AGING_INTERVAL_S: '2' }, {}, '/srv');
    assert.deepEqual(
      c.users.list().map((u) => u.name),
      ['token-1', 'token-2'],
    );
    assert.equal(c.users.authenticate('b')?.name, 'token-2');
    assert.equal(c.agingIntervalMs, 2000);
    assert.equal(c.home, '/srv/.rfuav');
    assert.equal(c.dataRoot, '/srv/data');
  });

  it('names users: name:token pairs, admins, a users file with salted hashes, quotas; mistakes named', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rfuav-users-'));
    const carol = newToken();
    fs.writeFileSync(
      path.join(dir, 'users.yaml'),
      [
        'defaults:',
        '  quotas: { queued: 50 }',
        'users:',
        '  - name: carol',
        '    share: 2',
        `    token_sha256: "${hashToken(carol)}"`,
        '    quotas: { running: { training: 1 } }',
      ].join('\n'),
    );
    const c = loadConfig(
      {
        RFUAV_API_TOKENS: 'alice:tok-a,bob:tok-b',
        RFUAV_ADMINS: 'alice',
        RFUAV_USERS_FILE: 'users.yaml',
        RFUAV_QUOTAS: '{"queued":10,"running":{"inference":3}}',
      },
      {},
      dir,
    );
    const u = c.users;
    assert.equal(u.authenticate('tok-a')?.name, 'alice');
    assert.equal(u.authenticate('tok-a')?.role, 'admin');
    assert.equal(u.authenticate('tok-b')?.role, 'user');
    assert.equal(u.authenticate(carol)?.name, 'carol');
    assert.equal(u.authenticate(carol)?.share, 2);
    assert.equal(u.authenticate('tok-c'), null);
    assert.equal(u.authenticate(`${carol}x`), null);
    // Environment defaults, then the file's (for everyone), then the user's own.
    assert.deepEqual(u.get('carol')?.quotas, { queued: 50, running: { inference: 3, training: 1 } });
    assert.deepEqual(u.get('bob')?.quotas, { queued: 50, running: { inference: 3 } });
    assert.deepEqual(
      loadConfig({ RFUAV_API_TOKENS: 'bob:t', RFUAV_QUOTAS: '{"queued":10}' }).users.get('bob')?.quotas,
      {
        queued: 10,
      },
    );
    assert.ok(
      !fs.readFileSync(path.join(dir, 'users.yaml'), 'utf8').includes(carol),
      'only a hash is stored',
    );
    // Nobody named admin: everyone is one (the old anonymous tokens could do everything).
    assert.equal(loadConfig({ RFUAV_API_TOKENS: 'x,y' }).users.authenticate('y')?.role, 'admin');
    // No tokens: the local user alone.
    assert.deepEqual(
      loadConfig({})
        .users.list()
        .map((x) => [x.name, x.role]),
      [['local', 'admin']],
    );
    for (const [env, message] of [
      [{ RFUAV_API_TOKENS: 'a:t1,a:t2' }, /user 'a' is named twice/],
      [{ RFUAV_API_TOKENS: 'a:t1', RFUAV_ADMINS: 'zed' }, /RFUAV_ADMINS names 'zed'/],
      [{ RFUAV_QUOTAS: '{"queued":-1}' }, /RFUAV_QUOTAS.queued must be a whole number/],
      [{ RFUAV_QUOTAS: '{"gpus":1}' }, /unknown quota/],
      [{ RFUAV_QUOTAS: '{"gpu_hours_per_day":-2}' }, /gpu_hours_per_day must be a number/],
      [{ RFUAV_QUOTAS: '{"running":{"gaming":1}}' }, /not a resource class/],
      [{ RFUAV_USERS_FILE: 'missing.yaml' }, /could not be read/],
      [{ RFUAV_VISIBILITY: 'some' }, /RFUAV_VISIBILITY/],
    ] as const) {
      assert.throws(() => loadConfig(env, {}, dir), message);
    }
    fs.writeFileSync(path.join(dir, 'bad.yaml'), 'users:\n  - name: dave\n    token_sha256: plain-token\n');
    assert.throws(() => loadConfig({ RFUAV_USERS_FILE: 'bad.yaml' }, {}, dir), /token_sha256 must be sha256/);
  });

  it('chooses PostgreSQL for a postgres:// DATABASE_URL (or --database-url), else SQLite', () => {
    assert.equal(loadConfig({}).databaseUrl, null);
    assert.equal(loadConfig({ DATABASE_URL: ' ' }).databaseUrl, null);
    const url = 'postgres://rfuav:secret@db:5432/rfuav';
    assert.equal(loadConfig({ DATABASE_URL: url }).databaseUrl, url);
    assert.equal(
      loadConfig({ DATABASE_URL: url }, { databaseUrl: 'postgresql://other/x' }).databaseUrl,
      'postgresql://other/x',
    );
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'mysql://db/x' }),
      /DATABASE_URL must start with postgres:\/\//,
    );
    assert.throws(() => loadConfig({ DATABASE_URL: 'not a url' }), /DATABASE_URL must be a URL/);
    assert.throws(() => loadConfig({ RFUAV_PG_POOL: '0' }), /RFUAV_PG_POOL/);
  });
});

describe('split arithmetic and seeded shuffle', () => {
  it('gives every split at least one image when there are enough', () => {
    assert.deepEqual(splitCounts(10, 0.8, null), [8, 2, 0]);
    assert.deepEqual(splitCounts(10, 0.7, 0.2), [7, 2, 1]);
    assert.deepEqual(splitCounts(2, 0.9, null), [1, 1, 0]);
    assert.deepEqual(splitCounts(3, 0.9, 0.05), [1, 1, 1]);
    assert.deepEqual(splitCounts(1, 0.8, null), [1, 0, 0]);
    assert.deepEqual(splitCounts(0, 0.8, 0.1), [0, 0, 0]);
    for (let n = 0; n < 60; n++) {
      const [a, b, c] = splitCounts(n, 0.65, 0.2);
      assert.equal(a + b + c, n);
    }
  });
  it('shuffles reproducibly for a seed and differently for another', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const a = shuffle([...items], mulberry32(7));
    assert.deepEqual(shuffle([...items], mulberry32(7)), a);
    assert.notDeepEqual(shuffle([...items], mulberry32(8)), a);
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      items,
    );
  });
});
