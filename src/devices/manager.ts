import type { DeviceInfo } from '../domain/devices.js';
import { probeGpus, toDevices, type GpuReading } from './gpu.js';

export interface DeviceManagerOptions {
  nvidiaSmi: string;
  refreshMs: number;
  /** Called when the GPU set or their free memory changed. */
  onChange?: (devices: DeviceInfo[]) => void;
}

/**
 * Knows this node's devices. GPUs come from nvidia-smi at start; while GPUs exist their memory is
 * re-read every `refreshMs` (driver monitoring, not queue polling: the scheduler is woken only when
 * a figure changed).
 */
export class DeviceManager {
  private gpus: GpuReading[] = [];
  private timer: NodeJS.Timeout | null = null;
  private lastReadAt = 0;
  private refreshing: Promise<GpuReading[] | null> | null = null;
  /** Whether the driver answers the compute_cap field (found out at start). */
  private computeCap = true;

  constructor(private readonly opts: DeviceManagerOptions) {}

  async start(): Promise<void> {
    // No nvidia-smi (or a failing one) at start: a node without GPUs.
    let found = await probeGpus(this.opts.nvidiaSmi, true);
    if (found === null) {
      // An older driver refuses the whole query for its compute_cap field: ask without it.
      found = await probeGpus(this.opts.nvidiaSmi, false);
      if (found !== null) this.computeCap = false;
    }
    this.gpus = found ?? [];
    this.lastReadAt = Date.now();
    if (this.gpus.length > 0 && this.opts.refreshMs > 0) {
      // probeGpus never rejects (a failing nvidia-smi reads as no GPUs)
      this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get gpuCount(): number {
    return this.gpus.length;
  }

  readings(): GpuReading[] {
    return this.gpus.map((g) => ({ ...g }));
  }

  devices(): DeviceInfo[] {
    return toDevices(this.gpus);
  }

  /** Re-reads the driver (concurrent callers share one probe); `maxAgeMs` allows a cached answer. */
  async refresh(maxAgeMs = 0): Promise<GpuReading[]> {
    if (Date.now() - this.lastReadAt <= maxAgeMs) return this.readings();
    this.refreshing ??= probeGpus(this.opts.nvidiaSmi, this.computeCap).finally(() => {
      this.refreshing = null;
    });
    const next = await this.refreshing;
    // A probe that fails later (driver busy, timeout) keeps the last good reading: GPUs do not
    // vanish from the scheduler because one nvidia-smi call went wrong.
    if (next === null) return this.readings();
    this.lastReadAt = Date.now();
    const changed = JSON.stringify(next) !== JSON.stringify(this.gpus);
    this.gpus = next;
    if (changed) this.opts.onChange?.(this.devices());
    return this.readings();
  }
}
