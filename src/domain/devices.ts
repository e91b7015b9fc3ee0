/** What a node's devices are, as every layer sees them (the probe fills it, the scheduler places on it). */

/** One schedulable device of this node, as the scheduler sees it. */
export interface DeviceInfo {
  /** "cpu" or "cuda:N". */
  id: string;
  kind: 'cpu' | 'gpu';
  index: number | null;
  name: string;
  totalMemoryGb: number | null;
  /** Free memory as last reported by the driver. */
  freeMemoryGb: number | null;
}
