/**
 * PostgreSQL restarted under a creation storm: two nodes take submissions as fast as two clients
 * send them while the database goes down for two seconds and comes back. Every answer is a 200 or
 * a 503 (never a 500, never a dropped connection), every accepted task is stored and runs to its
 * end, and both nodes recover by themselves.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql, startNode, statusOf, stopNodes } from '../cluster-nodes.js';
import { tmpDir, waitFor } from '../helpers.js';
import { startPostgres, type TestPostgres } from '../postgres.js';

let server: TestPostgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

describe('a cluster when PostgreSQL restarts', () => {
  it('loses no accepted task under a creation storm, answers 503 meanwhile, and recovers by itself', async () => {
    const db = await server.createDatabase();
    const dataRoot = path.join(tmpDir(), 'data');
    const nodes = await Promise.all([startNode(db, 'a', dataRoot), startNode(db, 'b', dataRoot)]);
    const accepted: string[] = [];
    const answers: Record<string, number> = {};
    let storming = true;
    const client = async (url: string) => {
      while (storming) {
        let status: string;
        try {
          const res = await fetch(`${url}/api/v2/preprocessing/sleep`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ ms: 5 }),
            signal: AbortSignal.timeout(20_000),
          });
          status = String(res.status);
          const body = (await res.json()) as { task_id?: string };
          if (res.status === 200 && body.task_id) accepted.push(body.task_id);
        } catch (err) {
          status = `error: ${(err as Error).message}`;
        }
        answers[status] = (answers[status] ?? 0) + 1;
        if (status !== '200') await new Promise((r) => setTimeout(r, 20));
      }
    };
    // A long task followed over SSE on the node that does not run it, across the restart.
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const followed = await (
      await fetch(`${a.url}/api/v2/preprocessing/sleep`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ms: 8000 }),
      })
    ).json();
    const followedId = (followed as { task_id: string }).task_id;
    await waitFor(async () => (await statusOf(db, followedId))?.status === 'running', 10_000, 'it to run');
    const runsOn = (await statusOf(db, followedId))?.node_name;
    const follower = runsOn === 'a' ? b : a;
    // As an EventSource does: a stream that breaks is resumed from the last id it delivered.
    let resumed = 0;
    const streamText = (async () => {
      let text = '';
      const deadline = Date.now() + 90_000;
      while (!/"status":"completed"/.test(text) && Date.now() < deadline) {
        const last = [...text.matchAll(/^id: (\d+)$/gm)].at(-1)?.[1];
        try {
          const res = await fetch(`${follower.url}/api/v2/tasks/${followedId}/logs`, {
            headers: last ? { 'last-event-id': last } : {},
          });
          const reader = (res.body as ReadableStream<Uint8Array>).getReader();
          const decoder = new TextDecoder();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            text += decoder.decode(value, { stream: true });
          }
        } catch {
          // broken mid-stream: resumed below
        }
        if (!/"status":"completed"/.test(text)) {
          resumed++;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      return text;
    })();
    const clients = nodes.map((n) => client(n.url));
    await waitFor(() => accepted.length >= 200, 30_000, 'the storm to get going');
    const before = accepted.length;
    await server.restart(2000);
    await waitFor(() => accepted.length >= before + 200, 60_000, 'acceptance to resume').catch(
      (err: Error) => {
        throw new Error(
          `${err.message}: ${JSON.stringify(answers)}\n${nodes.map((n) => n.output().slice(-4000)).join('\n----\n')}`,
        );
      },
    );
    storming = false;
    await Promise.all(clients);
    const unexpected = Object.keys(answers).filter((s) => s !== '200' && s !== '503');
    assert.deepEqual(
      unexpected,
      [],
      `${JSON.stringify(answers)}\n${nodes.map((n) => n.output().slice(-3000)).join('\n----\n')}`,
    );
    assert.ok((answers['503'] ?? 0) > 0, `the outage was seen: ${JSON.stringify(answers)}`);
    // Every accepted task is stored, and every one of them runs to its end.
    await waitFor(
      async () => {
        const rows = await sql<{ n: number }>(
          db,
          "SELECT count(*)::int AS n FROM tasks WHERE task_id = ANY($1) AND status = 'completed'",
          [accepted],
        );
        return rows[0]?.n === accepted.length;
      },
      120_000,
      'every accepted task to complete',
    ).catch(async (err: Error) => {
      const by = await sql(
        db,
        'SELECT status, count(*)::int AS n FROM tasks WHERE task_id = ANY($1) GROUP BY 1',
        [accepted],
      );
      throw new Error(`${err.message}: ${accepted.length} accepted, ${JSON.stringify(by)}`);
    });
    const stored = await sql<{ n: number }>(db, 'SELECT count(*)::int AS n FROM tasks');
    assert.equal(
      stored[0]?.n,
      accepted.length + 1,
      'nothing stored that was not answered as accepted, either',
    );
    // The follower got every stored line of the followed task once, in order, then its end.
    const text = await streamText;
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    const seqs = (
      await sql<{ seq: number }>(db, 'SELECT seq FROM task_logs WHERE task_id = $1 ORDER BY seq', [
        followedId,
      ])
    ).map((r) => r.seq);
    assert.deepEqual(
      ids,
      seqs,
      `the stream has exactly the stored lines, across the outage (resumed ${resumed} times)`,
    );
    assert.match(text, /"status":"completed"/);
    // Both nodes are back: active, heartbeating, and healthy.
    await waitFor(
      async () => {
        const states = await sql<{ name: string; state: string }>(
          db,
          "SELECT name, state FROM nodes WHERE state = 'active' ORDER BY name",
        );
        return states.map((s) => s.name).join() === 'a,b';
      },
      15_000,
      'both nodes to be active',
    );
    for (const n of nodes) {
      const health = (await (await fetch(`${n.url}/api/v1/health`)).json()) as { status: string };
      assert.equal(health.status, 'healthy');
    }
    await stopNodes(...nodes);
  });
});
