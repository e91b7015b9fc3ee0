import fs from 'node:fs';
import path from 'node:path';
import { badPath } from '../domain/errors.js';

/**
 * The one gate for every path a request names. Paths are read relative to the data root (an
 * absolute path is accepted only if it lies inside it); `..` segments, NUL bytes and symlinks that
 * lead outside the root are refused with 400. Returns the resolved real path (symlinks inside the
 * root are followed), so callers never act on a path that was not checked.
 */
export class PathSandbox {
  readonly root: string;
  /** The root with symbolic links resolved: every path `resolve` returns lies under it. */
  readonly realRoot: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    fs.mkdirSync(this.root, { recursive: true });
    this.realRoot = fs.realpathSync(this.root);
  }

  resolve(input: string, field: string): string {
    return this.resolveNoting(input, field, undefined);
  }

  /**
   * What is at `resolved` (a path `resolve` returned), following a final symbolic link, or null
   * when nothing is there.
   */
  stat(resolved: string): fs.Stats | null {
    try {
      return fs.statSync(resolved, { throwIfNoEntry: false }) ?? null;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOTDIR') return null;
      throw err;
    }
  }

  /** `resolve`, noting in `seen` what the walk learnt about each path it stepped through. */
  private resolveNoting(input: string, field: string, seen: StatMemo | undefined): string {
    if (typeof input !== 'string' || input.trim() === '')
      throw badPath(`${field}: a path is required`, { field });
    if (input.includes('\0')) throw badPath(`${field}: the path contains a NUL byte`, { field });
    if (input.includes('..') && input.split(/[\\/]+/).includes('..')) {
      throw badPath(`${field}: '..' is not allowed in paths`, { field, path: input });
    }
    const joined = path.isAbsolute(input) ? path.resolve(input) : path.resolve(this.root, input);
    if (!this.inside(joined, this.root) && !this.inside(joined, this.realRoot)) {
      throw badPath(`${field}: '${input}' is outside the data root`, { field, path: input });
    }
    const base = this.inside(joined, this.root) ? this.root : this.realRoot;
    // `joined` is normalised and lies under `base`: what follows it is the part below the root.
    const rel =
      joined.length === base.length
        ? ''
        : joined.slice(base.endsWith(path.sep) ? base.length : base.length + 1);
    return this.walk(rel, field, input, seen);
  }

  /**
   * `rel` (below the root, no `..`) resolved component by component from the root's real path:
   * a plain folder or file is stepped into, a symbolic link is resolved (wherever it leads, then
   * checked to stay inside), and at the first component that does not exist the rest is appended
   * as it is (it will be created inside the root). One lstat per component below the root: the
   * root's own location was resolved once, at start. `seen` gets each plain component's lstat
   * (for what is not a symbolic link, its stat) and null for the paths found missing.
   */
  private walk(rel: string, field: string, input: string, seen?: StatMemo): string {
    const parts = rel === '' ? [] : rel.split(path.sep);
    let cur = this.realRoot;
    for (let i = 0; i < parts.length; i++) {
      const next = cur.endsWith(path.sep)
        ? cur + (parts[i] as string)
        : cur + path.sep + (parts[i] as string);
      // A folder this submission already stepped through (train_path, then val_path beside it).
      let st: fs.Stats | undefined = seen?.get(next) ?? undefined;
      if (!st)
        try {
          st = fs.lstatSync(next, { throwIfNoEntry: false });
        } catch (err) {
          // Below a file: nothing there, as for a missing component.
          const code = (err as { code?: string }).code;
          if (code !== 'ENOTDIR') throw unresolvable(field, input, code);
        }
      if (!st) {
        const missing = path.join(cur, ...parts.slice(i));
        seen?.set(next, null).set(missing, null);
        return missing;
      }
      if (st.isSymbolicLink()) cur = this.followLink(next, field, input);
      else {
        seen?.set(next, st);
        cur = next;
      }
    }
    return cur;
  }

  /** Where the symbolic link `link` leads, which must exist and lie inside the root. */
  private followLink(link: string, field: string, input: string): string {
    let real: string;
    try {
      real = fs.realpathSync.native(link);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // A dangling symlink (or one in a loop). Where it would lead cannot be checked safely (its
      // target may be created later, or chain through other links), so it is refused.
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') {
        throw badPath(`${field}: '${input}' goes through a symbolic link that points nowhere`, {
          field,
          path: input,
        });
      }
      throw unresolvable(field, input, code);
    }
    return this.checkedInside(real, field, input);
  }

  private checkedInside(resolved: string, field: string, input: string): string {
    if (!this.inside(resolved, this.realRoot)) {
      throw badPath(`${field}: '${input}' leads outside the data root through a symbolic link`, {
        field,
        path: input,
      });
    }
    return resolved;
  }

  /**
   * A view of this sandbox for one submission's checks: a path named several times (a job checks
   * train_path, then that save_path is not inside it) is resolved once, and `stat` answers from
   * what resolving learnt (the walk's lstat of a folder is its stat), so a check that resolves a
   * path and then asks whether it is a folder costs one system call, not two. Errors are not
   * kept, and the view is dropped with the submission, so nothing seen here outlives the check.
   */
  forOneCheck(): PathSandbox {
    const resolved = new Map<string, string>();
    // What walks learnt (lstat of plain components, so their stat too), kept apart from what
    // `stat` looked up: a stat follows links, and a walk must never take a link for a folder.
    const walked: StatMemo = new Map();
    const looked: StatMemo = new Map();
    const view = Object.create(this) as PathSandbox;
    view.resolve = (input: string, field: string) => {
      let r = resolved.get(input);
      if (r === undefined) {
        r = this.resolveNoting(input, field, walked);
        resolved.set(input, r);
      }
      return r;
    };
    view.stat = (p: string) => {
      let st = walked.has(p) ? walked.get(p) : looked.get(p);
      if (st === undefined) {
        st = this.stat(p);
        looked.set(p, st);
      }
      return st;
    };
    return view;
  }

  /**
   * `file`, a path under the already resolved output folder `dir`, resolved as `resolve` does and
   * required to stay inside `dir`: a symbolic link inside an output folder may lead neither out of
   * the data root nor elsewhere in it (back into the input, onto a model card).
   */
  within(dir: string, file: string, field: string): string {
    const shown = this.display(file);
    const real = this.resolve(shown, field);
    if (!this.inside(real, dir)) {
      throw badPath(`${field}: '${shown}' leads out of ${field} through a symbolic link`, {
        field,
        path: shown,
      });
    }
    return real;
  }

  /** The path as shown to clients: relative to the data root. */
  display(resolved: string): string {
    for (const base of [this.realRoot, this.root]) {
      if (resolved === base) return '.';
      if (this.inside(resolved, base))
        return resolved.slice(base.endsWith(path.sep) ? base.length : base.length + 1);
    }
    return path.relative(this.root, resolved) || '.';
  }

  /**
   * `text` (an error message, a log line) with the data root's absolute location taken out:
   * paths under it become relative, the root itself `.`. Clients never see where it lives.
   */
  scrub(text: string): string {
    let out = text;
    for (const r of new Set([this.realRoot, this.root])) {
      out = out.split(r + path.sep).join('');
      const escaped = r.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      out = out.replace(new RegExp(escaped + String.raw`(?=$|[\s'"),:;])`, 'g'), '.');
    }
    return out;
  }

  private inside(p: string, root: string): boolean {
    return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
  }
}

/** Path → what is there (null: nothing), as one submission's checks learnt it. */
type StatMemo = Map<string, fs.Stats | null>;

function unresolvable(field: string, input: string, code: string | undefined) {
  return badPath(`${field}: '${input}' cannot be resolved (${code ?? 'error'})`, { field, path: input });
}
