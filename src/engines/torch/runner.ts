/**
 * Runs the PyTorch runner (python/rfuav_torch) as a child process in its own process group:
 * request as one JSON line on stdin (kept open: its EOF tells the runner the service is gone;
 * with a keep-alive, a line every few seconds gives it a deadline to go on until, and a runner
 * whose deadline passes stops by itself),
 * newline-delimited JSON events on stdout, stderr kept for the task log. Cancelling terminates
 * the whole group (SIGTERM, then SIGKILL after a grace period) and settles only after the exit,
 * so a slot is never freed while the process still runs. Crashes, silence past a timeout and
 * output that is not an event fail the run with the reason; nothing here can take the service
 * down with it.
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
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
  keepAlive?: RunnerKeepAlive;
}

/**
 * Who may keep the runner going. While `ok()` holds, the runner is sent, several times per
 * `timeoutMs`, a deadline `timeoutMs` ahead; a runner whose deadline passes kills itself and its
 * process group. A cluster node says ok only while its lease outlasts that timeout, so a node
 * that is frozen or cut off cannot leave a runner writing after another node has taken the task.
 */
export interface RunnerKeepAlive {
  timeoutMs: number;
  ok(): boolean;
}

export class RunnerError extends Error {
  constructor(
    message: string,
    readonly reason: 'error-event' | 'exit' | 'silence' | 'garbage' | 'spawn' | 'aborted' | 'keepalive',
  ) {
    super(message);
    this.name = 'RunnerError';
  }
}

/** Resolves with the `result` event's fields; rejects with a RunnerError saying why not. */
export function runTorch(opts: RunnerOptions): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawnRunner(opts);
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const run: RunState = { result: null, failure: null, stderrTail: [] };
    const killer = killEscalation(child, opts.killGraceMs);
    // The first reason wins: a cancel stays a cancel even if the runner then prints garbage.
    const stop = (why: RunnerError) => {
      run.failure ??= why;
      killer.start();
    };
    const silence = silenceWatchdog(opts.silenceTimeoutMs, () =>
      stop(
        new RunnerError(
          `the runner said nothing for ${opts.silenceTimeoutMs / 1000} s and was stopped`,
          'silence',
        ),
      ),
    );
    const onAbort = () => stop(new RunnerError('cancelled', 'aborted'));
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    silence.heard();

    child.stdout.setEncoding('utf8');
    child.stdout.on(
      'data',
      lineReader(silence.heard, (line) => onStdoutLine(line.trim(), run, opts, stop)),
    );
    child.stderr.setEncoding('utf8');
    child.stderr.on(
      'data',
      lineReader(silence.heard, (line) => {
        run.stderrTail = [...run.stderrTail.slice(-19), line];
        opts.onStderr?.(line);
      }),
    );
    child.stdin.on('error', () => undefined); // EPIPE when the runner has exited
    child.stdin.write(`${JSON.stringify(opts.request)}\n`);
    const keepAlive = opts.keepAlive ? keepAliveWriter(child, opts.keepAlive, opts.signal) : null;

    child.on('error', (err) => {
      run.failure ??= new RunnerError(`could not start ${opts.python}: ${err.message}`, 'spawn');
    });
    child.on('close', (code, sig) => {
      silence.clear();
      killer.clear();
      keepAlive?.stop();
      opts.signal?.removeEventListener('abort', onAbort);
      child.stdin.destroy();
      // Whatever else the group started goes too.
      signalGroup(child, 'SIGKILL');
      if (run.failure) return reject(run.failure);
      if (code === 0 && run.result) return resolve(run.result);
      // Its keep-alive was held back (the lease was in doubt): it stopped itself, as it must.
      if (keepAlive?.heldBack())
        return reject(
          new RunnerError(
            `the runner stopped itself: no keep-alive for ${(opts.keepAlive as RunnerKeepAlive).timeoutMs / 1000} s (the node's lease could not be renewed in time)`,
            'keepalive',
          ),
        );
      reject(exitError(code, sig, run));
    });
  });
}

/** What one run has heard so far. */
interface RunState {
  /** The `result` event's fields, once it came. */
  result: Record<string, unknown> | null;
  /** Why the run fails, once something said so (the first reason is kept). */
  failure: RunnerError | null;
  /** The last 20 lines of stderr, for the message when the runner exits without a result. */
  stderrTail: string[];
}

/** The interpreter on the runner package, in a process group of its own. */
function spawnRunner(opts: RunnerOptions): ChildProcessWithoutNullStreams {
  const args = Array.isArray(opts.command) ? opts.command : ['-m', 'rfuav_torch', opts.command];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PYTHONPATH: PYTHON_ROOT,
    PYTHONUNBUFFERED: '1',
    ...opts.env,
  };
  // Only a runner that is sent keep-alives may wait for them (never one inherited from our env).
  if (opts.keepAlive) env.RFUAV_KEEPALIVE_MS = String(Math.round(opts.keepAlive.timeoutMs));
  else delete env.RFUAV_KEEPALIVE_MS;
  return spawn(opts.python, args, {
    cwd: PYTHON_ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group, so a cancel reaches every process it starts
  });
}

/**
 * Four times per timeout (at most once a second), while `ok()` holds and the run is not being
 * stopped, tells the runner how long it may go on: a deadline on the monotonic clock, which a
 * child on the same machine reads as Python's time.monotonic(), so a keep-alive that sat in the
 * pipe never stretches it. `heldBack` says whether one was withheld lately.
 */
function keepAliveWriter(
  child: ChildProcessWithoutNullStreams,
  k: RunnerKeepAlive,
  signal: AbortSignal | undefined,
): { stop(): void; heldBack(): boolean } {
  let heldBackAt = Number.NEGATIVE_INFINITY;
  let lastTick = performance.now();
  const timer = setInterval(
    () => {
      const now = performance.now();
      // This process itself was frozen past the deadline: nothing could be sent meanwhile.
      if (now - lastTick > k.timeoutMs) heldBackAt = now;
      lastTick = now;
      if (!k.ok() || signal?.aborted) {
        heldBackAt = now;
        return;
      }
      if (!child.stdin.writable) return;
      const nowMs = Number(process.hrtime.bigint() / 1_000_000n);
      child.stdin.write(`${nowMs + Math.round(k.timeoutMs)}\n`);
    },
    Math.max(20, Math.min(1000, k.timeoutMs / 4)),
  );
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    // Recently enough that the runner's deadline can have passed for want of one.
    heldBack: () => performance.now() - heldBackAt < k.timeoutMs + 2000,
  };
}

/** Sends `sig` to the child's whole process group; nothing when it is already gone. */
function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // already gone
  }
}

/**
 * SIGTERM to the group, then SIGKILL after `graceMs` if the runner is still there. `start` is
 * idempotent: a second reason to stop does not restart the grace period.
 */
function killEscalation(child: ChildProcess, graceMs: number): { start(): void; clear(): void } {
  let timer: NodeJS.Timeout | null = null;
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    start() {
      if (timer) return;
      if (alive()) signalGroup(child, 'SIGTERM');
      timer = setTimeout(() => {
        if (alive()) signalGroup(child, 'SIGKILL');
      }, graceMs);
    },
    clear() {
      if (timer) clearTimeout(timer);
    },
  };
}

/** Calls `onSilence` when `heard` has not been called for `ms`; each call restarts the wait. */
function silenceWatchdog(ms: number, onSilence: () => void): { heard(): void; clear(): void } {
  let timer: NodeJS.Timeout | null = null;
  return {
    heard() {
      if (timer) clearTimeout(timer);
      timer = setTimeout(onSilence, ms);
    },
    clear() {
      if (timer) clearTimeout(timer);
    },
  };
}

/** A 'data' listener for a text stream: every chunk counts as heard, complete lines go to `onLine`. */
function lineReader(heard: () => void, onLine: (line: string) => void): (chunk: string) => void {
  let buffered = '';
  return (chunk) => {
    heard();
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      onLine(line);
    }
  };
}

/** The event a line of stdout holds, or null when it is not one. */
function parseEvent(line: string): RunnerEvent | null {
  try {
    const event = JSON.parse(line) as RunnerEvent;
    return typeof event === 'object' && event !== null && typeof event.event === 'string' ? event : null;
  } catch {
    return null;
  }
}

/** One line of stdout: an event kept (result, error) and relayed, or garbage that stops the run. */
function onStdoutLine(
  line: string,
  run: RunState,
  opts: RunnerOptions,
  stop: (why: RunnerError) => void,
): void {
  if (!line) return;
  const event = parseEvent(line);
  if (!event) {
    stop(
      new RunnerError(`the runner printed something that is not an event: ${line.slice(0, 200)}`, 'garbage'),
    );
    return;
  }
  if (event.event === 'result') {
    const { event: _kind, ...fields } = event;
    run.result = fields;
  } else if (event.event === 'error') {
    run.failure ??= new RunnerError(String(event.message ?? 'the runner reported an error'), 'error-event');
  }
  try {
    opts.onEvent(event);
  } catch {
    // a consumer's bug must not leave the process running unobserved
  }
}

/** Why a runner that exited without a failure of its own did not succeed. */
function exitError(code: number | null, sig: NodeJS.Signals | null, run: RunState): RunnerError {
  const tail = run.stderrTail
    .filter((l) => l.trim())
    .slice(-3)
    .join(' | ');
  return new RunnerError(
    `the runner exited ${sig ? `on ${sig}` : `with code ${code}`}${run.result ? '' : ' without a result'}${tail ? `: ${tail}` : ''}`,
    'exit',
  );
}
