/**
 * Training across a cluster, with the real PyTorch runner: a node killed (-9) or frozen (SIGSTOP)
 * in the middle of a training run. Its task is re-queued within the lease, resumes from
 * checkpoint_last.pt on the other node (the data root is shared), and its metric history and
 * metrics.jsonl have every epoch exactly once. A frozen node's runner stops by itself (it hears
 * no keep-alive), before the other node takes the task over.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { processEnded, runningOnOneOfTwo, sql, statusOf, stopNodes, type Node } from '../cluster-nodes.js';
import { writeImageFolder } from '../fixtures/images.js';
import { replayedLog, tmpDir, waitFor } from '../helpers.js';
import { startPostgres, type TestPostgres } from '../postgres.js';

let server: TestPostgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

const EPOCHS = 5;
const env = { RFUAV_TORCH_THREADS: '1' };

describe('training on a cluster survives the loss of the node that runs it', async () => {
  const dataRoot = path.join(tmpDir(), 'data');
  await writeImageFolder(path.join(dataRoot, 'set/train'), { classes: 2, perClass: 16, size: 64, seed: 3 });
  await writeImageFolder(path.join(dataRoot, 'set/val'), { classes: 2, perClass: 4, size: 64, seed: 7 });

  /** A training run on one of two nodes, into its third epoch (two are checkpointed). */
  async function trainingOnOneOfTwo(db: string, save: string, nodeEnv: Record<string, string> = {}) {
    return runningOnOneOfTwo(
      db,
      dataRoot,
      async (url) => {
        const res = await fetch(`${url}/api/v2/training/start`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'resnet18',
            num_classes: 2,
            train_path: 'set/train',
            val_path: 'set/val',
            save_path: save,
            device: 'cpu',
            image_size: 64,
            batch_size: 4,
            num_epochs: EPOCHS,
            learning_rate: 0.001,
            pretrained: false,
            seed: 1,
          }),
        });
        assert.equal(res.status, 200, await res.clone().text());
        return ((await res.json()) as { task_id: string }).task_id;
      },
      { ...env, ...nodeEnv },
      (log) => log.some((m) => /^Epoch 3 /.test(m)),
    );
  }

  /** Waits for the task to end (however it ends); its row. */
  const finished = (db: string, id: string) =>
    waitFor(
      async () => {
        const row = await statusOf(db, id);
        return row && ['completed', 'failed', 'cancelled'].includes(row.status) ? row : null;
      },
      180_000,
      'the task to finish',
    );

  /** The runner's pid, from the line the node logged when it started it. */
  async function runnerPid(db: string, id: string): Promise<number> {
    const rows = await sql<{ message: string }>(
      db,
      "SELECT message FROM task_logs WHERE task_id = $1 AND message LIKE 'Runner started:%' ORDER BY seq",
      [id],
    );
    return Number(/\(pid (\d+)/.exec(rows.at(-1)?.message ?? '')?.[1]);
  }

  /** Waits for the task to complete on `other`, then checks every epoch ran to its end once. */
  async function finishedOnceEach(db: string, id: string, other: Node, save: string): Promise<void> {
    const row = await finished(db, id);
    assert.equal(row?.status, 'completed', other.proc.output());
    assert.equal(row?.node_name, other.name);
    assert.equal(row?.attempts, 2);
    const log = await replayedLog(other.proc.url, `/api/v2/tasks/${id}/logs`);
    const text = log.map((e) => String(e.message));
    assert.ok(
      text.some((m) => /Resuming from checkpoint_last\.pt: epoch \d done, continuing at epoch \d/.test(m)),
      text.join('\n'),
    );
    const epochs = await sql<{ epoch: number }>(
      db,
      'SELECT epoch FROM task_metrics WHERE task_id = $1 ORDER BY epoch',
      [id],
    );
    const all = Array.from({ length: EPOCHS }, (_, i) => i + 1);
    assert.deepEqual(
      epochs.map((r) => r.epoch),
      all,
    );
    const jsonl = fs
      .readFileSync(path.join(dataRoot, save, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n');
    assert.deepEqual(
      jsonl.map((l) => (JSON.parse(l) as { epoch: number }).epoch),
      all,
      'one line per epoch in the model folder: no two runners wrote it',
    );
  }

  it('kill -9 of the node: re-queued within the lease, resumed on the other node, each epoch once', async () => {
    const db = await server.createDatabase();
    const save = 'runs/killed';
    const { id, victim, other } = await trainingOnOneOfTwo(db, save);
    const pid = await runnerPid(db, id);
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exited;
    await waitFor(() => processEnded(pid), 10_000, "the killed node's runner to exit on its own");
    await finishedOnceEach(db, id, other, save);
    await stopNodes(other.proc);
  });

  it('a node frozen past its lease: its runner stops by itself first, the task resumes elsewhere', async () => {
    const db = await server.createDatabase();
    const save = 'runs/frozen';
    const { id, victim, other } = await trainingOnOneOfTwo(db, save);
    const pid = await runnerPid(db, id);
    victim.proc.child.kill('SIGSTOP');
    try {
      await waitFor(
        async () => (await statusOf(db, id))?.node_name === other.name,
        30_000,
        'the other node to take the task',
      );
      // Checked while the node is still frozen: only the runner itself can have stopped it.
      assert.ok(processEnded(pid), "the frozen node's runner is gone before the task moved");
    } finally {
      victim.proc.child.kill('SIGCONT');
    }
    await finishedOnceEach(db, id, other, save);
    await stopNodes(victim.proc, other.proc);
  });

  it('a node frozen for less than its lease: its runner stops itself, and the task runs again', async () => {
    const db = await server.createDatabase();
    const save = 'runs/paused';
    // Heartbeats every second, a 6 s lease: runners go on for 2 s past the last keep-alive, and
    // the node would stop its own work 4 s after its last renewal. A 2.5 s freeze falls between.
    const { id, victim, other } = await trainingOnOneOfTwo(db, save, {
      RFUAV_HEARTBEAT_S: '1',
      RFUAV_LEASE_S: '6',
    });
    const pid = await runnerPid(db, id);
    victim.proc.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(processEnded(pid), 'the runner stopped itself while its node was frozen');
    victim.proc.child.kill('SIGCONT');
    const row = await finished(db, id);
    assert.equal(row?.status, 'completed', victim.proc.output());
    assert.equal(row?.attempts, 2);
    const log = (await replayedLog(other.proc.url, `/api/v2/tasks/${id}/logs`)).map((e) => String(e.message));
    assert.ok(
      log.some((m) =>
        /^Interrupted: the runner stopped itself: no keep-alive .* re-queued to run again$/.test(m),
      ),
      log.join('\n'),
    );
    await stopNodes(victim.proc, other.proc);
  });
});
