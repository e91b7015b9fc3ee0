/**
 * Output of the benchmarks: markdown tables on stdout, and a section per benchmark in
 * docs/PERFORMANCE.md stamped with the machine it ran on (numbers mean little without it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './server.js';

/** BENCH_QUICK=1 shrinks durations and counts: for checking the scripts work, not for numbers. */
export const QUICK = process.env.BENCH_QUICK === '1';

/**
 * Quick runs print but do not touch docs/PERFORMANCE.md (their numbers would overwrite real ones);
 * BENCH_WRITE=1 forces writing, BENCH_WRITE=0 suppresses it for full runs.
 */
const WRITE_DOCS = process.env.BENCH_WRITE ? process.env.BENCH_WRITE === '1' : !QUICK;

export const PERFORMANCE_MD = path.join(REPO_ROOT, 'docs', 'PERFORMANCE.md');

export interface MachineInfo {
  cpu: string;
  cores: number;
  totalMemory: string;
  node: string;
  os: string;
  date: string;
  /** 1-minute load average when the benchmark started: a busy machine explains odd numbers. */
  loadAvg: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    node: process.version,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    date: new Date().toISOString(),
    loadAvg: os.loadavg()[0]?.toFixed(2) ?? '?',
  };
}

export function machineLine(m: MachineInfo): string {
  return `Machine: ${m.cpu}, ${m.cores} cores, ${m.totalMemory} RAM, ${m.os}, Node ${m.node}; run ${m.date} (load average ${m.loadAvg} at start).`;
}

export function mdTable(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) =>
    `| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

export const fmtMs = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(ms < 10 ? 2 : 1) : '–');
export const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
export const fmtMiB = (bytes: number) => {
  if (!Number.isFinite(bytes)) return '–';
  const mib = bytes / 1024 ** 2;
  return `${mib.toFixed(mib < 10 ? 1 : 0)} MiB`;
};
export const verdict = (ok: boolean) => (ok ? 'pass' : '**FAIL**');

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

const SECTION_ORDER = ['http', 'dispatch', 'queue-depth', 'cluster'];
const start = (id: string) => `<!-- bench:${id}:start -->`;
const end = (id: string) => `<!-- bench:${id}:end -->`;

const HEADER = `# Performance

Measured by the benchmarks in \`bench/\` (see [bench/README.md](../bench/README.md) for how to run
them). Each benchmark rewrites its own section below when it runs; the service always runs in a
separate process from the load generator, on 127.0.0.1, with a throwaway home under the OS temp
folder. Load generator and service share the machine, so on small machines the load generator's
own CPU use lowers the numbers.
`;

/**
 * Replaces (or adds, in a fixed order) the section `id` of docs/PERFORMANCE.md. Sections are
 * delimited by HTML comments so the rest of the file can be edited by hand.
 */
export function writeSection(id: string, title: string, machine: MachineInfo, body: string): void {
  if (!WRITE_DOCS) {
    console.error(`[bench] not writing docs/PERFORMANCE.md (quick run; BENCH_WRITE=1 to force)`);
    return;
  }
  const section = `${start(id)}\n## ${title}\n\n${machineLine(machine)}\n\n${body.trim()}\n${end(id)}`;
  let doc = fs.existsSync(PERFORMANCE_MD) ? fs.readFileSync(PERFORMANCE_MD, 'utf8') : HEADER;
  const from = doc.indexOf(start(id));
  const to = doc.indexOf(end(id));
  if (from >= 0 && to > from) {
    doc = doc.slice(0, from) + section + doc.slice(to + end(id).length);
  } else {
    // Insert before the first section that comes later in the fixed order, else append.
    const later = SECTION_ORDER.slice(SECTION_ORDER.indexOf(id) + 1)
      .map((other) => doc.indexOf(start(other)))
      .filter((i) => i >= 0);
    const at = later.length > 0 ? Math.min(...later) : -1;
    doc = at >= 0 ? `${doc.slice(0, at)}${section}\n\n${doc.slice(at)}` : `${doc.trimEnd()}\n\n${section}\n`;
  }
  fs.mkdirSync(path.dirname(PERFORMANCE_MD), { recursive: true });
  fs.writeFileSync(PERFORMANCE_MD, doc);
  console.error(`[bench] updated section '${id}' of ${path.relative(process.cwd(), PERFORMANCE_MD)}`);
}

/** With BENCH_STRICT=1 a missed budget makes the process exit non-zero (for CI); otherwise it only reports. */
export function strictExit(failures: number): void {
  if (failures > 0 && process.env.BENCH_STRICT === '1') {
    console.error(`[bench] ${failures} budget(s) missed (BENCH_STRICT=1)`);
    process.exitCode = 1;
  }
}
