/**
 * The PyTorch and CUDA versions of the runner's interpreter, as the reference reports them in
 * GET /api/v2/resources/gpu (`pytorch_version`: torch.__version__, `cuda_version`:
 * torch.version.cuda, the CUDA the build targets). Asked once per process: importing torch takes
 * seconds, and the answer cannot change while the service runs.
 */
import { execFile } from 'node:child_process';

export interface TorchVersions {
  pytorch_version: string | null;
  cuda_version: string | null;
}

const PROBE =
  'import json, torch; print(json.dumps({"pytorch_version": torch.__version__, "cuda_version": torch.version.cuda}))';

const UNKNOWN: TorchVersions = { pytorch_version: null, cuda_version: null };

/** Parses the probe's output; anything unexpected reads as unknown. */
export function parseTorchVersions(stdout: string): TorchVersions {
  try {
    const v = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>;
    const str = (x: unknown) => (typeof x === 'string' && x.length > 0 && x.length < 100 ? x : null);
    return { pytorch_version: str(v.pytorch_version), cuda_version: str(v.cuda_version) };
  } catch {
    return UNKNOWN;
  }
}

export class TorchVersionProbe {
  private answer: Promise<TorchVersions> | null = null;

  constructor(
    private readonly python: string,
    private readonly timeoutMs = 60_000,
  ) {}

  /** Starts the probe now (on a GPU node, so the first GPU read does not wait for it). */
  warm(): void {
    void this.get();
  }

  /** The versions, or nulls when the interpreter has no torch (never rejects). */
  get(): Promise<TorchVersions> {
    this.answer ??= new Promise((resolve) => {
      execFile(
        this.python,
        ['-c', PROBE],
        { timeout: this.timeoutMs, windowsHide: true, env: { ...process.env, CUDA_VISIBLE_DEVICES: '' } },
        (err, stdout) => resolve(err ? UNKNOWN : parseTorchVersions(String(stdout))),
      );
    });
    return this.answer;
  }
}
