import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { NodeRow } from '../store/postgres/cluster.js';

/** Where nodes leave their marker files, inside the data root (hidden from every listing). */
export const MARKER_DIR = '.rfuav-nodes';

/** Heartbeats a live node's marker may be missing before the data root counts as not shared. */
const MISSES_BEFORE_WARNING = 3;

/**
 * The check that the data root is shared storage (NFS or similar) mounted at the same path on
 * every node, which failover needs: a task taken over elsewhere resumes from the model folder
 * its first node wrote. Each node writes `<data root>/.rfuav-nodes/<name>` holding its current
 * id, and looks for every other live node's. A node whose marker this node cannot see (after a
 * few heartbeats, so one that has just joined has time to write it) is reported loudly, once.
 */
export class SharedRootCheck {
  private readonly dir: string;
  private readonly misses = new Map<string, number>();
  private readonly unseen = new Set<string>();
  private readonly warned = new Set<string>();

  constructor(
    dataRoot: string,
    private readonly logger: Logger,
  ) {
    this.dir = path.join(dataRoot, MARKER_DIR);
  }

  /** Leaves this node's marker (again when it rejoins under a new id). */
  mark(node: { id: string; name: string }): void {
    try {
      fs.mkdirSync(this.dir, { recursive: true });
      const tmp = path.join(this.dir, `.${node.name}.${process.pid}.tmp`);
      fs.writeFileSync(tmp, `${node.id}\n`);
      fs.renameSync(tmp, path.join(this.dir, node.name));
    } catch (err) {
      this.logger.error(
        { err: (err as Error).message, dir: this.dir },
        'cannot write this node’s marker into the data root: other nodes will report it as not shared',
      );
    }
  }

  /** Looks for the markers of the other live nodes (run at each heartbeat; cheap: a read each). */
  check(nodes: readonly NodeRow[], self: string): void {
    const live = nodes.filter((n) => n.node_id !== self && (n.state === 'active' || n.state === 'draining'));
    for (const n of live) {
      if (this.sees(n)) {
        this.misses.delete(n.node_id);
        this.unseen.delete(n.name);
        continue;
      }
      const missed = (this.misses.get(n.node_id) ?? 0) + 1;
      this.misses.set(n.node_id, missed);
      if (missed < MISSES_BEFORE_WARNING) continue;
      this.unseen.add(n.name);
      if (this.warned.has(n.node_id)) continue;
      this.warned.add(n.node_id);
      this.logger.error(
        { node: n.name, marker: path.join(this.dir, n.name) },
        `THE DATA ROOT IS NOT SHARED with node ${n.name}: its marker file is not visible here. ` +
          'Tasks that move between nodes (failover, hand-back) will not find their data or checkpoints. ' +
          'Mount the same shared storage at the same path (RFUAV_DATA_ROOT) on every node.',
      );
    }
    const names = new Set(live.map((n) => n.name));
    for (const name of this.unseen) if (!names.has(name)) this.unseen.delete(name);
  }

  /** Live nodes whose marker this node cannot see (empty: the data root looks shared). */
  unseenNodes(): string[] {
    return [...this.unseen].sort();
  }

  private sees(n: NodeRow): boolean {
    try {
      return fs.readFileSync(path.join(this.dir, n.name), 'utf8').trim() === n.node_id;
    } catch {
      return false;
    }
  }
}
