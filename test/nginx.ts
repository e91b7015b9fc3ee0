/**
 * A real nginx for a test file, running deploy/nginx.conf as shipped with only its addresses
 * replaced: Debian's nginx-light (installed with apt-get when missing and running as root; else
 * the error says what to run), on its own prefix folder and a free loopback port. Stopped by
 * `stop()`, and at the latest when the test process exits.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aptInstall } from './apt.js';
import { freePort, waitFor } from './helpers.js';

export const SAMPLE_CONF = path.resolve(import.meta.dirname, '../deploy/nginx.conf');

function nginxBin(): string {
  const found = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
  if (found) return found;
  if (aptInstall('nginx-light') && fs.existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx';
  throw new Error('nginx is missing: run (as root) apt-get install -y nginx-light');
}

export interface TestNginx {
  url: string;
  /** Its error log so far (for failure messages). */
  errors(): string;
  stop(): void;
}

/** The sample configuration with its upstream servers and listen address replaced. */
export function sampleConf(upstreams: string[], listen: string): string {
  const conf = fs.readFileSync(SAMPLE_CONF, 'utf8');
  const servers = conf.match(/^\s*server 127\.0\.0\.1:\d+ .*;$/gm) ?? [];
  if (servers.length !== upstreams.length)
    throw new Error(
      `${SAMPLE_CONF} lists ${servers.length} upstream servers, the test has ${upstreams.length}`,
    );
  let i = 0;
  return conf
    .replace(
      /^(\s*server )127\.0\.0\.1:\d+( .*;)$/gm,
      (_m, head: string, tail: string) => `${head}${upstreams[i++]}${tail}`,
    )
    .replace(/^(\s*listen )127\.0\.0\.1:\d+;$/m, `$1${listen};`);
}

export async function startNginx(upstreams: string[]): Promise<TestNginx> {
  const bin = nginxBin();
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'rfuav-nginx-'));
  fs.mkdirSync(path.join(prefix, 'logs'));
  fs.mkdirSync(path.join(prefix, 'tmp'));
  const port = await freePort();
  const conf = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(conf, sampleConf(upstreams, `127.0.0.1:${port}`));
  execFileSync(bin, ['-p', prefix, '-c', conf, '-t'], { stdio: 'pipe' });
  execFileSync(bin, ['-p', prefix, '-c', conf], { stdio: 'pipe' });
  const pidFile = path.join(prefix, 'nginx.pid');
  await waitFor(() => fs.existsSync(pidFile), 10_000, 'nginx to write its pid');
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  process.once('exit', stop);
  return {
    url: `http://127.0.0.1:${port}`,
    errors: () => {
      try {
        return fs.readFileSync(path.join(prefix, 'logs/error.log'), 'utf8');
      } catch {
        return '';
      }
    },
    stop() {
      stop();
      process.removeListener('exit', stop);
      setTimeout(() => fs.rmSync(prefix, { recursive: true, force: true }), 500).unref();
    },
  };
}
