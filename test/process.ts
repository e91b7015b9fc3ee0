import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '..');
export const BIN = path.join(ROOT, 'bin/rfuav.js');

/** The CLI runs from dist/ (built by `npm ci` and by `npm test`); builds it when missing. */
export function ensureBuilt(): void {
  if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js')))
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT });
}

/** Runs the real `rfuav` CLI as a user would; resolves with its exit code and output. */
export function rfuav(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, cwd: ROOT });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts test/fixtures/server.ts (or the real CLI) as its own process; killed when the file ends. */
export async function spawnServer(
  env: Record<string, string>,
  args: string[] = ['--import', 'tsx', 'test/fixtures/server.ts'],
): Promise<ServerProcess> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, RFUAV_LOG_LEVEL: 'warn', RFUAV_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 20_000);
    const check = () => {
      const m = /LISTENING (\S+)|listening on (http:\/\/[^\s,]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve((m[1] ?? m[2]) as string);
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    void exited.then(() => reject(new Error(`server exited early:\n${out}`)));
  });
  return { child, url, output: () => out, exited };
}

/** `rfuav serve` from dist/ on a free loopback port, as a user starts it. */
export function spawnCliServer(
  home: string,
  dataRoot: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  return spawnServer({ RFUAV_LOG_LEVEL: 'warn', ...env }, [
    BIN,
    'serve',
    '--port',
    '0',
    '--home',
    home,
    '--data-root',
    dataRoot,
  ]);
}

export async function http<T = Record<string, unknown>>(
  url: string,
  method = 'GET',
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}
