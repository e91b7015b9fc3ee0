import { execFile } from 'node:child_process';
import type { DeviceInfo } from '../domain/devices.js';

export interface GpuReading {
  index: number;
  name: string;
  totalMemoryGb: number;
  usedMemoryGb: number;
  freeMemoryGb: number;
  utilization: number | null;
  /** "8.0"; null when the driver is too old to report it (compute_cap came with driver 510). */
  computeCapability: string | null;
}

const BASE_QUERY = 'index,name,memory.total,memory.used,memory.free,utilization.gpu';
const QUERY_WITH_CAP = `${BASE_QUERY},compute_cap`;

/**
 * Parses `nvidia-smi --query-gpu=index,name,memory.total,memory.used,memory.free,utilization.gpu[,compute_cap]
 * --format=csv,noheader,nounits` (memory in MiB). Lines that do not parse are skipped.
 */
export function parseNvidiaSmi(text: string): GpuReading[] {
  const out: GpuReading[] = [];
  for (const line of text.split('\n')) {
    const cols = line.split(',').map((c) => c.trim());
    if (cols.length < 5) continue;
    const [idx, name, total, used, free, util, cap] = cols;
    const index = Number(idx);
    const mib = [Number(total), Number(used), Number(free)];
    if (!Number.isInteger(index) || mib.some((n) => !Number.isFinite(n))) continue;
    const u = Number(util);
    out.push({
      index,
      name: name ?? `GPU ${index}`,
      totalMemoryGb: (mib[0] as number) / 1024,
      usedMemoryGb: (mib[1] as number) / 1024,
      freeMemoryGb: (mib[2] as number) / 1024,
      utilization: Number.isFinite(u) ? u : null,
      computeCapability: cap && /^\d+\.\d+$/.test(cap) ? cap : null,
    });
  }
  return out.sort((a, b) => a.index - b.index);
}

/**
 * Asks the driver; null when nvidia-smi is absent or fails (never an exception). `computeCap`
 * false leaves out the compute_cap field, which drivers before 510 refuse as a whole query.
 */
export function probeGpus(
  nvidiaSmi: string,
  computeCap = true,
  timeoutMs = 5000,
): Promise<GpuReading[] | null> {
  return new Promise((resolve) => {
    execFile(
      nvidiaSmi,
      [`--query-gpu=${computeCap ? QUERY_WITH_CAP : BASE_QUERY}`, '--format=csv,noheader,nounits'],
      { timeout: timeoutMs, windowsHide: true },
      (err, stdout) => resolve(err ? null : parseNvidiaSmi(String(stdout))),
    );
  });
}

export function toDevices(gpus: GpuReading[]): DeviceInfo[] {
  return [
    { id: 'cpu', kind: 'cpu', index: null, name: 'cpu', totalMemoryGb: null, freeMemoryGb: null },
    ...gpus.map((g): DeviceInfo => ({
      id: `cuda:${g.index}`,
      kind: 'gpu',
      index: g.index,
      name: g.name,
      totalMemoryGb: g.totalMemoryGb,
      freeMemoryGb: g.freeMemoryGb,
    })),
  ];
}
