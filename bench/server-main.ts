/**
 * Child-process entry of the benchmarks: the real service (same composition root as `rfuav serve`)
 * plus one controllable task kind, `bench_hold`. Run by bench/server.ts as
 * `node --import tsx bench/server-main.ts`; configured only through RFUAV_* environment variables.
 *
 * It runs in its own process so the load generator never shares the service's event loop or CPU
 * time slice, which would make both the latencies and the throughput meaningless.
 *
 * Protocol with the parent (stdout, one line): `LISTENING <url> ready_ms=<ms>`, where ready_ms is
 * the time createService() + listen() took inside this process (store open, recovery, routes),
 * i.e. start-up cost without the Node/tsx boot.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Type, type Static } from '@sinclair/typebox';
import { loadConfig } from '../src/config.js';
import { defineJob } from '../src/jobs/job.js';
import { createService } from '../src/main.js';

const HoldBody = Type.Object({
  hold_ms: Type.Optional(Type.Integer({ minimum: 0, description: 'How long the task occupies its slot' })),
});

/**
 * A preprocessing task that does nothing but hold its slot for `hold_ms`, so benchmarks measure the
 * service (acceptance, queueing, dispatch) rather than any real work. Its `route` makes the
 * preprocessing routes expose it as POST /api/v2/preprocessing/bench-hold.
 */
export const benchHoldJob = defineJob<typeof HoldBody, { hold_ms?: number }>({
  kind: 'bench_hold',
  resourceClass: 'preprocessing',
  route: 'bench-hold',
  body: HoldBody,

  async validate(body: Static<typeof HoldBody>) {
    return { params: { ...body }, input_path: null, output_path: null };
  },

  async run(params, ctx) {
    const holdMs = typeof params.hold_ms === 'number' ? params.hold_ms : 0;
    // Rejects with an AbortError on cancel/shutdown, which the service turns into cancelled/re-queued.
    if (holdMs > 0) await sleep(holdMs, undefined, { signal: ctx.signal });
    return { message: `held the slot for ${holdMs} ms` };
  },
});

async function main(): Promise<void> {
  const t0 = performance.now();
  const svc = await createService({
    config: loadConfig(process.env),
    extraJobs: [benchHoldJob],
  });
  const address = await svc.listen();
  const readyMs = performance.now() - t0;
  process.stdout.write(`LISTENING ${address} ready_ms=${readyMs.toFixed(1)}\n`);

  // Same two-phase stop as `rfuav serve`: SIGTERM/SIGINT close gracefully, a second signal exits.
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    svc.logger.info(`${why}: shutting down`);
    svc.close().then(
      () => process.exit(0),
      (err: unknown) => {
        svc.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // bench/server.ts holds our stdin open; if it dies without killing us (e.g. kill -9 of the
  // benchmark), stdin ends and we shut down instead of lingering as an orphan. Opt-in, so a manual
  // run with stdin at /dev/null does not stop at once.
  if (process.env.BENCH_EXIT_ON_STDIN_END === '1') {
    process.stdin.on('end', () => stop('parent gone (stdin closed)'));
    process.stdin.resume();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
