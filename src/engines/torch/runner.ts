/**
 * Runs the PyTorch runner (python/rfuav_torch) as a child process in its own process group:
 * request as one JSON line on stdin (kept open: its EOF tells the runner the service is gone),
 * newline-delimited JSON events on stdout, stderr kept for the task log. Cancelling terminates
 * the whole group (SIGTERM, then SIGKILL after a grace period) and settles only after the exit,
 * so a slot is never freed while the process still runs. Crashes, silence past a timeout and
 * output that is not an event fail the run with the reason; nothing here can take the service
 * down with it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** python/ at the repository root (three levels up from src/engines/torch and dist/engines/torch). */
export const PYTHON_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../python');

export interface RunnerEvent {
  event: string;
  [field: string]: unknown;
}

export interface RunnerOptions {
  python: string;
  /** Runner command (train, evaluate, …), or a full argument list for the interpreter. */
  command: string | string[];
  request: object;
  signal?: AbortSignal;
  /** Extra environment (e.g. CUDA_VISIBLE_DEVICES). */
  env?: Record<string, string>;
  /** Fail when neither stdout nor stderr says anything for this long. */
  silenceTimeoutMs: number;
  /** SIGTERM → SIGKILL. */
  killGraceMs: number;
  onEvent(event: RunnerEvent): void;
  onStderr?(line: string): void;
  /** The child's pid (also its process group id), once started. */
  onSpawn?(pid: number): void;
}

export class RunnerError extends Error {
  constructor(
    message: string,
    readonly reason: 'error-event' | 'exit' | 'silence' | 'garbage' | 'spawn' | 'aborted',
  ) {
    super(message);
    this.name = 'RunnerError';
  }
}

/** Resolves with the `result` event's fields; rejects with a RunnerError saying why not. */
export function runTorch(opts: RunnerOptions): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const args = Array.isArray(opts.command) ? opts.command : ['-m', 'rfuav_torch', opts.command];
    const child = spawn(opts.python, args, {
      cwd: PYTHON_ROOT,
      env: {
        ...process.env,
        PYTHONPATH: PYTHON_ROOT,
        PYTHONUNBUFFERED: '1',
        ...opts.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // its own process group, so a cancel reaches every process it starts
    });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    let result: Record<string, unknown> | null = null;
    let failure: RunnerError | null = null;
    let stderrTail: string[] = [];
    let killTimer: NodeJS.Timeout | null = null;
    let silenceTimer: NodeJS.Timeout | null = null;

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    const stop = (why: RunnerError) => {
      failure ??= why;
      if (killTimer) return;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs);
    };
    const heard = () => {
      if (silenceTimer) clearTimeout(silenceTimer);
      silenceTimer = setTimeout(
        () =>
          stop(
            new RunnerError(
              `the runner said nothing for ${opts.silenceTimeoutMs / 1000} s and was stopped`,
              'silence',
            ),
          ),
        opts.silenceTimeoutMs,
      );
    };
    const onAbort = () => stop(new RunnerError('cancelled', 'aborted'));
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    heard();

    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      heard();
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line) continue;
        let event: RunnerEvent;
        try {
          event = JSON.parse(line) as RunnerEvent;
          if (typeof event !== 'object' || event === null || typeof event.event !== 'string')
            throw new Error('no event');
        } catch {
          stop(
            new RunnerError(
              `the runner printed something that is not an event: ${line.slice(0, 200)}`,
              'garbage',
            ),
          );
          continue;
        }
        if (event.event === 'result') {
          const { event: _kind, ...fields } = event;
          result = fields;
        } else if (event.event === 'error') {
          failure ??= new RunnerError(String(event.message ?? 'the runner reported an error'), 'error-event');
        }
        try {
          opts.onEvent(event);
        } catch {
          // a consumer's bug must not leave the process running unobserved
        }
      }
    });
    child.stderr.setEncoding('utf8');
    let stderrBuffered = '';
    child.stderr.on('data', (chunk: string) => {
      heard();
      stderrBuffered += chunk;
      let nl: number;
      while ((nl = stderrBuffered.indexOf('\n')) >= 0) {
        const line = stderrBuffered.slice(0, nl);
        stderrBuffered = stderrBuffered.slice(nl + 1);
        stderrTail = [...stderrTail.slice(-19), line];
        opts.onStderr?.(line);
      }
    });
    child.stdin.on('error', () => undefined); // EPIPE when the runner has exited
    child.stdin.write(`${JSON.stringify(opts.request)}\n`);

    child.on('error', (err) => {
      failure ??= new RunnerError(`could not start ${opts.python}: ${err.message}`, 'spawn');
    });
    child.on('close', (code, sig) => {
      if (silenceTimer) clearTimeout(silenceTimer);
      if (killTimer) clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      child.stdin.destroy();
      // Whatever else the group started goes too.
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // none left
        }
      }
      if (failure) return reject(failure);
      if (code === 0 && result) return resolve(result);
      const tail = stderrTail
        .filter((l) => l.trim())
        .slice(-3)
        .join(' | ');
      reject(
        new RunnerError(
          `the runner exited ${sig ? `on ${sig}` : `with code ${code}`}${result ? '' : ' without a result'}${tail ? `: ${tail}` : ''}`,
          'exit',
        ),
      );
    });
  });
}
