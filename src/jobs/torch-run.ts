/**
 * What training and evaluation share: running one command of the PyTorch runner for a task, on
 * the device the scheduler chose, with its events turned into the task's log and progress.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { TorchSettings } from '../config.js';
import { toLogLevel, type LogExtra } from '../domain/task.js';
import { InterruptedError } from '../domain/errors.js';
import { RunnerError, runTorch, type RunnerEvent } from '../engines/torch/runner.js';
import type { RunContext } from './job.js';

/**
 * The device as the runner sees it. A GPU task gets only its GPU (CUDA_VISIBLE_DEVICES=N, so
 * inside the process it is cuda:0); a CPU task gets none, so it cannot touch a GPU by mistake.
 */
export function runnerDevice(device: string): { device: string; env: Record<string, string> } {
  const m = /^cuda:(\d+)$/.exec(device);
  if (m) return { device: 'cuda:0', env: { CUDA_VISIBLE_DEVICES: m[1] as string } };
  return { device: 'cpu', env: { CUDA_VISIBLE_DEVICES: '' } };
}

/**
 * What every request gets besides the job's own fields (python/rfuav_torch/requests.py,
 * RunnerRequest). The service always sends both; the defaults are what a runner started by hand
 * assumes (scripts/runner-defaults.ts copies them for the Python side).
 */
export const RunnerFields = Type.Object({
  device: Type.String({ default: 'cpu', description: "'cpu' or 'cuda:0' (the one GPU the runner is shown)" }),
  threads: Type.Integer({
    minimum: 0,
    default: 0,
    description: 'CPU threads torch may use (0: torch decides)',
  }),
});

export interface TorchRunOptions {
  torch: TorchSettings;
  /**
   * A name in the runner's COMMANDS table (python/rfuav_torch/__main__.py), the one list of
   * them; an unknown name fails the task with the runner's error saying which names it knows.
   */
  command: string;
  request: Record<string, unknown>;
  ctx: RunContext;
  /** Where the runner's progress goes (default: the task's progress as is). */
  progress?(percent: number, message?: string): void;
  /** Events other than log/progress (metrics, history, artifact). */
  onEvent?(event: RunnerEvent): void;
}

/**
 * Runs the command; resolves with the runner's result, rejects with the reason it failed (an
 * InterruptedError when the runner stopped itself for want of its keep-alive: not the task's fault).
 */
export async function runTorchForTask(o: TorchRunOptions): Promise<Record<string, unknown>> {
  try {
    return await runTorchCommand(o);
  } catch (err) {
    if (err instanceof RunnerError && err.reason === 'keepalive') throw new InterruptedError(err.message);
    throw err;
  }
}

async function runTorchCommand(o: TorchRunOptions): Promise<Record<string, unknown>> {
  const { ctx } = o;
  const placed = runnerDevice(ctx.device);
  const added: Static<typeof RunnerFields> = { device: placed.device, threads: o.torch.threads };
  return runTorch({
    python: o.torch.python,
    command: o.command,
    request: { ...o.request, ...added },
    signal: ctx.signal,
    env: placed.env,
    silenceTimeoutMs: o.torch.silenceTimeoutMs,
    killGraceMs: o.torch.killGraceMs,
    keepAlive: ctx.keepAlive,
    onSpawn: (pid) =>
      ctx.log(
        `Runner started: ${o.torch.python} -m rfuav_torch ${o.command} (pid ${pid}, device ${placed.device}, ` +
          `CUDA_VISIBLE_DEVICES='${placed.env.CUDA_VISIBLE_DEVICES}', ${o.torch.threads} CPU thread${o.torch.threads === 1 ? '' : 's'})`,
      ),
    onStderr: (line) => {
      if (line.trim()) ctx.log(`runner stderr: ${line}`, 'WARNING');
    },
    onEvent: (event) => {
      if (event.event === 'log') {
        // The runner writes Python's level names in any case ('info', 'warning').
        const level = toLogLevel(event.level);
        const extra: LogExtra = {};
        if (typeof event.stage === 'string') extra.stage = event.stage;
        if (typeof event.step === 'number') extra.step = event.step;
        if (event.metrics && typeof event.metrics === 'object')
          extra.metrics = event.metrics as Record<string, unknown>;
        ctx.log(String(event.message ?? ''), level, extra);
      } else if (event.event === 'progress') {
        const pct = Number(event.percent);
        if (Number.isFinite(pct))
          (o.progress ?? ctx.progress.bind(ctx))(
            pct,
            typeof event.message === 'string' ? event.message : undefined,
          );
      } else if (event.event === 'error') {
        if (typeof event.traceback === 'string') ctx.log(event.traceback.trimEnd(), 'DEBUG');
      } else {
        o.onEvent?.(event);
      }
    },
  });
}
