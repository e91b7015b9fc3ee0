import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { createService, InsecureListenError } from '../../src/main.js';
import { Gates } from '../gate-job.js';
import { startService, testConfig, tmpDir } from '../helpers.js';

describe('security', () => {
  it('requires a bearer token on /api/* (health stays open) when tokens are configured', async () => {
    const dir = tmpDir();
    const svc = await startService(dir, { env: { RFUAV_API_TOKENS: 'alpha-token,beta-token' } });
    const get = (url: string, token?: string) =>
      svc.app.inject({ url, headers: token ? { authorization: `Bearer ${token}` } : {} });
    assert.equal((await get('/api/v1/health')).statusCode, 200);
    assert.equal((await get('/api/v1/health/ready')).statusCode, 200);
    const denied = await get('/api/v2/tasks');
    assert.equal(denied.statusCode, 401);
    assert.equal(denied.headers['www-authenticate'], 'Bearer');
    assert.match(JSON.parse(denied.body).message, /bearer token is required/);
    assert.equal((await get('/api/v2/tasks', 'wrong')).statusCode, 401);
    assert.equal((await get('/api/v2/tasks', 'alpha-tok')).statusCode, 401);
    assert.equal((await get('/api/v2/tasks', 'alpha-token')).statusCode, 200);
    assert.equal((await get('/api/v2/tasks', 'beta-token')).statusCode, 200);
    assert.equal((await get('/metrics')).statusCode, 401);
    assert.equal((await get('/metrics', 'beta-token')).statusCode, 200);
    const post = await svc.app.inject({ method: 'POST', url: '/api/v2/preprocessing/split', payload: {} });
    assert.equal(post.statusCode, 401, 'auth is checked before the body');
    // percent-encoded spellings of a guarded path reach the same route and the same check
    for (const url of ['/%61pi/v2/tasks', '/api/v2/%74asks', '/%6detrics', '/api/v1/../v2/tasks']) {
      const r = await get(url);
      assert.ok(r.statusCode === 401 || r.statusCode === 404, `${url} answered ${r.statusCode}`);
    }
  });

  it('refuses to listen on a non-loopback address without tokens unless told it is insecure', async () => {
    const dir = tmpDir();
    await assert.rejects(
      createService({
        config: testConfig(dir, { RFUAV_HOST: '0.0.0.0' }),
        logger: pino({ level: 'silent' }),
      }),
      InsecureListenError,
    );
    const tokens = await createService({
      config: testConfig(tmpDir(), { RFUAV_HOST: '0.0.0.0', RFUAV_API_TOKENS: 't' }),
      logger: pino({ level: 'silent' }),
    });
    assert.match(await tokens.listen(), /:\d+$/);
    await tokens.close();
    const insecure = await createService({
      config: testConfig(tmpDir(), { RFUAV_HOST: '0.0.0.0', RFUAV_INSECURE: '1' }),
      logger: pino({ level: 'silent' }),
    });
    assert.match(await insecure.listen(), /:\d+$/);
    await insecure.close();
  });

  it('rate-limits task creation per client with 429 and Retry-After, leaving reads alone', async () => {
    const dir = tmpDir();
    const gates = new Gates();
    const svc = await startService(dir, {
      env: { RFUAV_RATE_LIMIT: '5', RFUAV_RATE_WINDOW_S: '60' },
      extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
    });
    const codes: number[] = [];
    let last;
    for (let i = 0; i < 8; i++) {
      last = await svc.app.inject({ method: 'POST', url: '/api/v2/preprocessing/gate', payload: {} });
      codes.push(last.statusCode);
    }
    assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert.ok(Number(last?.headers['retry-after']) > 0);
    const body = JSON.parse(last?.body ?? '{}');
    assert.equal(body.status, 'error');
    assert.match(body.message, /too many tasks created; retry in \d+ s/);
    // the limit is shared across task-creating routes, per client
    const split = await svc.app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/split',
      payload: { input_path: 'a', output_path: 'b' },
    });
    assert.equal(split.statusCode, 429);
    const other = await svc.app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/gate',
      payload: {},
      remoteAddress: '127.0.0.2',
    });
    assert.equal(other.statusCode, 200);
    // a made-up Authorization header is no new client
    const forged = await svc.app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/gate',
      payload: {},
      headers: { authorization: 'Bearer made-up-1' },
    });
    assert.equal(forged.statusCode, 429);
    assert.equal((await svc.app.inject({ url: '/api/v2/tasks' })).statusCode, 200);
    assert.match(
      (await svc.app.inject({ url: '/metrics' })).body,
      /rfuav_http_rejected_total\{reason="rate_limited"\} [1-9]/,
    );
  });

  it('behind a trusted proxy, limits each forwarded client as itself; untrusted, the header is ignored', async () => {
    const gates = new Gates();
    const create = (svc: Awaited<ReturnType<typeof startService>>, client: string) =>
      svc.app
        .inject({
          method: 'POST',
          url: '/api/v2/preprocessing/gate',
          payload: {},
          headers: { 'x-forwarded-for': client },
        })
        .then((r) => r.statusCode);
    const env = { RFUAV_RATE_LIMIT: '2', RFUAV_RATE_WINDOW_S: '60' };
    const behind = await startService(tmpDir(), {
      env: { ...env, RFUAV_TRUST_PROXY: 'loopback' },
      extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
    });
    const trusted = [];
    for (const client of ['10.0.0.1', '10.0.0.1', '10.0.0.1', '10.0.0.2', '10.0.0.2'])
      trusted.push(await create(behind, client));
    assert.deepEqual(
      trusted,
      [200, 200, 429, 200, 200],
      'each client behind the proxy has its own allowance',
    );
    const open = await startService(tmpDir(), {
      env,
      extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
    });
    const untrusted = [];
    for (const client of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) untrusted.push(await create(open, client));
    assert.deepEqual(untrusted, [200, 200, 429], 'a forged X-Forwarded-For buys nothing');
  });

  it('answers 503 (not 500) while the store is unreachable; health stays up, readiness fails', async () => {
    const svc = await startService(tmpDir());
    await svc.store.close();
    const read = await svc.app.inject({ url: '/api/v2/tasks/anything' });
    assert.equal(read.statusCode, 503);
    assert.match(JSON.parse(read.body).message, /task store is unavailable/);
    assert.equal((await svc.app.inject({ url: '/api/v1/health/ready' })).statusCode, 503);
    assert.equal((await svc.app.inject({ url: '/api/v1/health' })).statusCode, 200);
  });

  it('keeps one service per home: a second one on the same store is refused, the first unharmed', async () => {
    const dir = tmpDir();
    const first = await startService(dir);
    await assert.rejects(
      createService({ config: testConfig(dir), logger: pino({ level: 'silent' }) }),
      /another RFUAV service is already using/,
    );
    assert.equal((await first.app.inject({ url: '/api/v1/health/ready' })).statusCode, 200);
  });
});
