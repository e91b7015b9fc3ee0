import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { isLive, type NodeRow } from '../store/postgres/cluster.js';

/** Where nodes leave their marker files, inside the data root (hidden from every listing). */
export const MARKER_DIR = '.rfuav-nodes';

/**
 * The check that the data root is shared storage (NFS or similar) mounted at the same path on
 * every node, which failover needs: a task taken over elsewhere resumes from the model folder
 * its first node wrote. Each node writes `<data root>/.rfuav-nodes/<name>` holding its current
 * id, and looks for every other live node's. A node whose marker this node has not seen for
 * `graceMs` (a node that has just joined needs time to write it, and NFS caches a missing name
 * for up to a minute) is reported loudly, once. Every file call is asynchronous and at most one
 * check runs at a time, so a hung mount holds up nothing but the check.
 */
export class SharedRootCheck {
  private readonly dir: string;
  /** When a live node's marker was first missed (its id → ms), until it is seen. */
  private readonly missingSince = new Map<string, number>();
  private readonly unseen = new Set<string>();
  private readonly warned = new Set<string>();
  private checking = false;

  constructor(
    dataRoot: string,
    private readonly logger: Logger,
    private readonly graceMs: number,
  ) {
    this.dir = path.join(dataRoot, MARKER_DIR);
  }

  /** Leaves this node's marker (again when it rejoins under a new id). */
  async mark(node: { id: string; name: string }): Promise<void> {
    try {
      await fs.mkdir(this.dir, { recursive: true });
      const tmp = path.join(this.dir, `.${node.name}.${process.pid}.tmp`);
      await fs.writeFile(tmp, `${node.id}\n`);
      await fs.rename(tmp, path.join(this.dir, node.name));
    } catch (err) {
      this.logger.error(
        { err: (err as Error).message, dir: this.dir },
        'cannot write this node’s marker into the data root: other nodes will report it as not shared',
      );
    }
  }

  /** Looks for the markers of the other live nodes (at each heartbeat; skipped while one runs). */
  check(nodes: readonly NodeRow[], self: string): void {
    if (this.checking) return;
    this.checking = true;
    void this.checkNow(nodes, self).finally(() => (this.checking = false));
  }

  private async checkNow(nodes: readonly NodeRow[], self: string): Promise<void> {
    const live = nodes.filter((n) => n.node_id !== self && isLive(n));
    for (const n of live) {
      if (await this.sees(n)) {
        this.missingSince.delete(n.node_id);
        this.unseen.delete(n.name);
        continue;
      }
      const since = this.missingSince.get(n.node_id) ?? Date.now();
      this.missingSince.set(n.node_id, since);
      if (Date.now() - since < this.graceMs) continue;
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

  private async sees(n: NodeRow): Promise<boolean> {
    try {
      return (await fs.readFile(path.join(this.dir, n.name), 'utf8')).trim() === n.node_id;
    } catch {
      return false;
    }
  }
}
