import fs from 'node:fs';
import os from 'node:os';

export interface CpuInfo {
  percent: number;
  per_cpu_percent: number[];
  cores: number;
  physical_cores: number;
  /** Null where the OS does not report a clock. */
  freq_mhz: number | null;
  /** The reference's shape: minutes → load. */
  load_avg: { '1': number | null; '5': number | null; '15': number | null };
  memory_percent: number;
  memory_total_gb: number;
  memory_available_gb: number;
}

type Times = { busy: number; total: number };

function snapshot(): Times[] {
  return os.cpus().map((c) => {
    const t = c.times;
    const busy = t.user + t.nice + t.sys + t.irq;
    return { busy, total: busy + t.idle };
  });
}

function physicalCores(): number {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const ids = new Set<string>();
    let phys = '0';
    for (const line of text.split('\n')) {
      const [k, v] = line.split(':').map((s) => s.trim());
      if (k === 'physical id') phys = v ?? '0';
      if (k === 'core id') ids.add(`${phys}:${v}`);
    }
    return ids.size || os.cpus().length;
  } catch {
    return os.cpus().length;
  }
}

function availableMemoryBytes(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return os.freemem();
}

/**
 * CPU usage is measured between two calls (the previous reading is kept), so a request never
 * sleeps to sample; the first call reports usage since boot.
 */
export class CpuMonitor {
  private last: Times[] = os.cpus().map(() => ({ busy: 0, total: 0 }));
  private readonly physical = physicalCores();

  read(): CpuInfo {
    const now = snapshot();
    const per = now.map((t, i) => {
      const prev = this.last[i] ?? { busy: 0, total: 0 };
      const dt = t.total - prev.total;
      return dt > 0 ? round1(((t.busy - prev.busy) / dt) * 100) : 0;
    });
    this.last = now;
    const total = os.totalmem();
    const avail = availableMemoryBytes();
    const cpus = os.cpus();
    return {
      percent: round1(per.reduce((a, b) => a + b, 0) / Math.max(1, per.length)),
      per_cpu_percent: per,
      cores: cpus.length,
      physical_cores: this.physical,
      freq_mhz: cpus[0]?.speed ? cpus[0].speed : null,
      load_avg: loadAverages(),
      memory_percent: round1(((total - avail) / total) * 100),
      memory_total_gb: round1(total / 2 ** 30),
      memory_available_gb: round1(avail / 2 ** 30),
    };
  }
}

/** os.loadavg() is [0, 0, 0] where the OS has no load average (Windows): unknown, not idle. */
function loadAverages(): CpuInfo['load_avg'] {
  const l = os.loadavg();
  const known = os.platform() !== 'win32';
  const at = (i: number) => (known ? round2(l[i] ?? 0) : null);
  return { '1': at(0), '5': at(1), '15': at(2) };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
