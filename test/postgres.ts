/**
 * A real PostgreSQL server for a test file: Debian's PostgreSQL (installed with apt-get when
 * missing and running as root, as the set-up does for torch; otherwise the error says what to
 * run), initialised on a temp folder and listening on a free loopback port only. PostgreSQL
 * refuses to run as root, so as root it runs as the `postgres` user (`runuser`). Stopped by
 * `stop()`, and at the latest when the test process exits.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { aptInstall, isRoot } from './apt.js';
import { freePort } from './helpers.js';

/** The newest PostgreSQL installed under /usr/lib/postgresql (RFUAV_PG_BIN overrides). */
function pgBin(): string | null {
  if (process.env.RFUAV_PG_BIN) return process.env.RFUAV_PG_BIN;
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base)
    ? fs
        .readdirSync(base)
        .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return versions[0] ? path.join(base, versions[0], 'bin') : null;
}

function ensurePostgres(): string {
  const found = pgBin();
  if (found) return found;
  if (aptInstall('postgresql')) {
    const bin = pgBin();
    if (bin) return bin;
  }
  throw new Error(
    'PostgreSQL is missing: run (as root) apt-get install -y postgresql, or point RFUAV_PG_BIN at its bin folder',
  );
}

export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** A new, empty database on this server; its URL. */
  createDatabase(name?: string): Promise<string>;
  /**
   * Stops the server (fast shutdown: connections are cut), leaves it down for `downMs`, and starts
   * it again on the same port, without blocking this process meanwhile.
   */
  restart(downMs?: number): Promise<void>;
  stopServer(): void;
  startServer(): void;
  /** Stops the server and removes its folder. */
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = ensurePostgres();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rfuav-pg-'));
  const data = path.join(dir, 'data');
  const socket = path.join(dir, 'sock');
  fs.mkdirSync(socket);
  if (isRoot) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  // As root: everything runs as postgres; otherwise as the current user.
  const run = (cmd: string, args: string[]) =>
    isRoot
      ? execFileSync('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { stdio: 'pipe' })
      : execFileSync(path.join(bin, cmd), args, { stdio: 'pipe' });
  /** The same, without blocking this process (its servers and clients go on meanwhile). */
  const runAsync = (cmd: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const [file, argv] = isRoot
        ? ['runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]]
        : [path.join(bin, cmd), args];
      execFile(file as string, argv as string[], (err) => (err ? reject(err) : resolve()));
    });
  run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${socket}`,
    "-c listen_addresses='127.0.0.1'",
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    '-c max_connections=200',
  ].join(' ');
  let running = false;
  const startArgs = [
    '-D',
    data,
    '-o',
    options,
    '-l',
    path.join(dir, 'server.log'),
    '-w',
    '-t',
    '60',
    'start',
  ];
  const stopArgs = ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop'];
  const startServer = () => {
    run('pg_ctl', startArgs);
    running = true;
  };
  const stopServer = () => {
    if (!running) return;
    run('pg_ctl', stopArgs);
    running = false;
  };
  startServer();
  const onExit = () => {
    try {
      if (running) run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already gone
    }
  };
  process.once('exit', onExit);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let n = 0;
  return {
    url,
    port,
    async createDatabase(name = `t${process.pid}_${++n}`) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async restart(downMs = 0) {
      await runAsync('pg_ctl', stopArgs);
      running = false;
      await new Promise((r) => setTimeout(r, downMs));
      await runAsync('pg_ctl', startArgs);
      running = true;
    },
    stopServer,
    startServer,
    async stop() {
      stopServer();
      process.removeListener('exit', onExit);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
