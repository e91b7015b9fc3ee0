/**
 * What the cluster tests share: service processes as nodes of one PostgreSQL database (real
 * processes: test/fixtures/server.ts, the real composition root plus a `sleep` kind), on
 * loopback with short heartbeats and leases, and direct reads of the database they share.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { tmpDir, waitFor } from './helpers.js';
import { spawnServer, type ServerProcess } from './process.js';

export interface Node {
  name: string;
  proc: ServerProcess;
}

/**
 * One node: its own home, the shared data root, heartbeats every 0.25 s and a 3 s lease (so a
 * lost node is noticed within seconds), and the backstop poll at 0.2 s unless `env` says else.
 */
export function startNode(
  db: string,
  name: string,
  dataRoot: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  return spawnServer({
    DATABASE_URL: db,
    RFUAV_NODE_NAME: name,
    RFUAV_HOME: path.join(tmpDir(), name),
    RFUAV_DATA_ROOT: dataRoot,
    RFUAV_HEARTBEAT_S: '0.25',
    RFUAV_LEASE_S: '3',
    RFUAV_POLL_S: '0.2',
    RFUAV_LIMITS: '{"cpu":{"preprocessing":2}}',
    ...env,
  });
}

/** One query on a connection of its own. */
export async function sql<T extends pg.QueryResultRow>(
  db: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: db });
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

/** A `sleep` task of `ms` (it logs "tick N" every 50 ms); its id. */
export async function submitSleep(url: string, ms: number): Promise<string> {
  const res = await fetch(`${url}/api/v2/preprocessing/sleep`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ms }),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { task_id: string }).task_id;
}

export const statusOf = async (db: string, id: string) =>
  (
    await sql<{ status: string; node_name: string | null; attempts: number }>(
      db,
      'SELECT status, node_name, attempts FROM tasks WHERE task_id = $1',
      [id],
    )
  )[0];

export const messages = async (db: string, id: string) =>
  (
    await sql<{ message: string }>(db, 'SELECT message FROM task_logs WHERE task_id = $1 ORDER BY seq', [id])
  ).map((r) => r.message);

/**
 * Two nodes, both up before anything is submitted (starting one takes seconds here), and the task
 * `submit` makes running on one of them, its start logged (a kill -9 between the running status
 * and that line would take the line with it): which one runs it, and the other.
 */
export async function runningOnOneOfTwo(
  db: string,
  dataRoot: string,
  submit: (url: string) => Promise<string>,
  env: Record<string, string> = {},
  started: (log: string[]) => boolean = (log) => log.some((m) => m.startsWith('Started on')),
): Promise<{ id: string; victim: Node; other: Node }> {
  const [a, b] = await Promise.all([startNode(db, 'a', dataRoot, env), startNode(db, 'b', dataRoot, env)]);
  const id = await submit(a.url);
  const running = await waitFor(
    async () => {
      const row = await statusOf(db, id);
      return row?.status === 'running' && started(await messages(db, id)) && row.node_name;
    },
    120_000,
    'the task to run',
  );
  const nodes = { a: { name: 'a', proc: a }, b: { name: 'b', proc: b } };
  return running === 'a' ? { id, victim: nodes.a, other: nodes.b } : { id, victim: nodes.b, other: nodes.a };
}

/** Whether a process has ended (a zombie whose parent is frozen counts: it runs no more). */
export function processEnded(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/**
 * A sleep task's live log read to its end: the stream's text, the tick numbers in the order they
 * came (every one once, if all is well), and when the first tick and the final status arrived.
 */
export async function followSleep(
  res: Response,
): Promise<{ text: string; ticks: number[]; firstTickAt: number; endAt: number }> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  let firstTickAt = 0;
  let endAt = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (!firstTickAt && /"message":"tick 0"/.test(text)) firstTickAt = Date.now();
    if (!endAt && /"status":"completed"/.test(text)) endAt = Date.now();
  }
  const ticks = [...text.matchAll(/"message":"tick (\d+)"/g)].map((m) => Number(m[1]));
  return { text, ticks, firstTickAt, endAt };
}

/** Stops these nodes (SIGTERM: each hands its work back) and waits until they have exited. */
export async function stopNodes(...procs: ServerProcess[]): Promise<void> {
  for (const p of procs) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
}

/** Waits for these tasks to complete; the names of the nodes that ran them, in order. */
export async function ranOn(db: string, ids: readonly string[]): Promise<string[]> {
  for (const id of ids)
    await waitFor(async () => (await statusOf(db, id))?.status === 'completed', 30_000, `${id} to finish`);
  const rows = await sql<{ node_name: string }>(
    db,
    'SELECT DISTINCT node_name FROM tasks WHERE task_id = ANY($1) ORDER BY node_name',
    [ids],
  );
  return rows.map((r) => r.node_name);
}
