/**
 * Baseline child for bench/http.ts: a bare Fastify app with one tiny JSON route and nothing else
 * (no store, hooks, schemas or metrics). Measured under the same conditions as the service, it
 * shows the ceiling that this machine and load generator allow, so the service's numbers can be
 * read against it. Same stdout protocol as server-main.ts.
 */
import Fastify from 'fastify';

async function main(): Promise<void> {
  const t0 = performance.now();
  const app = Fastify();
  app.get('/', async () => ({ status: 'ok' }));
  const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.RFUAV_PORT ?? 0) });
  process.stdout.write(`LISTENING ${address} ready_ms=${(performance.now() - t0).toFixed(1)}\n`);
  const stop = () => void app.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (process.env.BENCH_EXIT_ON_STDIN_END === '1') {
    process.stdin.on('end', stop);
    process.stdin.resume();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
