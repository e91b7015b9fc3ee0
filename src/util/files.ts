import fs from 'node:fs/promises';
import { statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { badPath } from '../domain/errors.js';
import { RecentMap } from './recent.js';
import type { PathSandbox } from './sandbox.js';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.gif', '.bmp', '.tiff', '.tif', '.webp']);

export function isImageFile(name: string): boolean {
  return !name.startsWith('.') && IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/**
 * The path's stat, or null if it does not exist (or cannot be read). A synchronous stat: one
 * metadata call, answered from the kernel's cache in microseconds, where the promise version
 * costs a thread-pool round trip several times that, on every submission check.
 */
export async function statOrNull(p: string): Promise<Stats | null> {
  return statSync(p, { throwIfNoEntry: false }) ?? null;
}

/**
 * A fact about a folder, kept for as long as the folder is unchanged: adding, removing or
 * renaming an entry updates a folder's mtime and ctime, so a fact recorded with the inode and times
 * the folder has now still holds. On a file system with coarse timestamps (1 s), a change within
 * the second of the recording can go unseen until the next change; submission checks are made
 * again when the job runs.
 */
export class PerFolderVersion<T> {
  private readonly known: RecentMap<string, { ino: number; mtimeMs: number; ctimeMs: number; value: T }>;

  constructor(max = 512) {
    this.known = new RecentMap(max);
  }

  get(dir: string, st: Stats): T | undefined {
    const k = this.known.get(dir);
    return k && k.ino === st.ino && k.mtimeMs === st.mtimeMs && k.ctimeMs === st.ctimeMs
      ? k.value
      : undefined;
  }

  set(dir: string, st: Stats, value: T): void {
    this.known.set(dir, { ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, value });
  }
}

type EntryKind = 'folder' | 'file' | 'other';
const listings = new PerFolderVersion<ReadonlyMap<string, EntryKind>>();

/**
 * The entries of the folder `dir` (name → kind), read again only when the folder has changed
 * (PerFolderVersion). Submissions that name the same dataset many times a second then list it
 * once (a stat each, not a readdir).
 */
export async function folderEntries(dir: string, st: Stats): Promise<ReadonlyMap<string, EntryKind>> {
  const known = listings.get(dir, st);
  if (known) return known;
  const entries = new Map<string, EntryKind>();
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    entries.set(e.name, e.isDirectory() ? 'folder' : e.isFile() ? 'file' : 'other');
  }
  listings.set(dir, st, entries);
  return entries;
}

/**
 * The input and output of a file-processing request, through the sandbox: the input must exist,
 * and the output, a folder the job writes into, must be a folder if it exists already.
 * Returns the resolved paths and the input's stat.
 */
export async function inputAndOutput(
  paths: PathSandbox,
  body: { input_path: string; output_path: string },
): Promise<{ input: string; output: string; stat: Stats }> {
  const { path: input, stat } = await existingPath(paths, body.input_path, 'input_path');
  const { path: output } = await outputFolder(paths, body.output_path, 'output_path');
  return { input, output, stat };
}

/**
 * `save_path` joined with the request's `name` (the reference's "sub-folder appended to the save
 * path"), checked to be one folder name so it cannot climb or branch out of save_path.
 */
export function withName(savePath: string, name: string | null | undefined): string {
  if (name === null || name === undefined) return savePath;
  if (name === '' || name === '.' || /[\\/]/.test(name) || name.includes('..')) {
    throw badPath(`name: '${name}' must be a single folder name (no '/', '\\' or '..')`, { field: 'name' });
  }
  return path.join(savePath, name);
}

/** A path a request names that must exist, and be a file or a folder when `kind` says so. */
export async function existingPath(
  paths: PathSandbox,
  value: string,
  field: string,
  kind?: 'file' | 'folder',
): Promise<{ path: string; stat: Stats }> {
  const resolved = paths.resolve(value, field);
  const stat = paths.stat(resolved);
  if (!stat) throw badPath(`${field}: '${value}' does not exist`, { field });
  if (kind === 'file' && !stat.isFile()) throw badPath(`${field}: '${value}' is not a file`, { field });
  if (kind === 'folder' && !stat.isDirectory())
    throw badPath(`${field}: '${value}' is not a folder`, { field });
  return { path: resolved, stat };
}

/** A folder a job writes into, through the sandbox: if it exists already, it must be a folder. */
export async function outputFolder(
  paths: PathSandbox,
  value: string,
  field: string,
): Promise<{ path: string; exists: boolean }> {
  const output = paths.resolve(value, field);
  const st = paths.stat(output);
  if (st && !st.isDirectory()) throw badPath(`${field}: '${value}' exists and is not a folder`, { field });
  return { path: output, exists: st !== null };
}

/** Sub-folders (not hidden), sorted by name: the classes of an ImageFolder root. */
export async function classFolders(root: string, st?: Stats): Promise<string[]> {
  const stat = st ?? statSync(root);
  const out: string[] = [];
  for (const [name, kind] of await folderEntries(root, stat)) {
    if (kind === 'folder' && !name.startsWith('.')) out.push(name);
  }
  return out.sort();
}

/** Image files directly inside `dir`, sorted by name so seeded shuffles are reproducible. */
export async function imagesIn(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && isImageFile(e.name))
    .map((e) => e.name)
    .sort();
}

/** Image files under `dir` at any depth, as paths relative to it, sorted. */
export async function imagesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const r = rel ? path.join(rel, e.name) : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile() && isImageFile(e.name)) out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

/** Whether `child` is `parent` or lies under it; both absolute and normalised, as PathSandbox.resolve returns them. */
export function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
}
