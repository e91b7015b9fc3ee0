/**
 * How a set of spectrogram images was rendered from raw IQ: the spectrogram task writes these
 * parameters beside its output (signal.json), split and augment carry the file into their
 * outputs, training copies it into the model card (`signal:`), and inference and predict on raw
 * recordings slice and render with the card's values unless the request names its own. A model
 * trained on 20 MS/s, 512-point, 96×96 images then classifies a raw recording as it was trained,
 * without the user restating (or misremembering) how its images were made.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { lstatSync, statSync, type Stats } from 'node:fs';
import { PerFolderVersion } from '../util/files.js';

export const SIGNAL_FILE = 'signal.json';

export interface SignalParams {
  sample_rate: number;
  stft_point: number;
  duration_time: number;
  /** Slices start duration_time × 2^−ratio apart (the reference's meaning). */
  ratio: number;
  /** STFT overlap in samples (always stft_point / 2, as scipy's default). */
  noverlap: number;
  dtype: 'float32' | 'int16';
  width: number;
  height: number;
  colormap?: string;
  /** How the slices were drawn (matplotlib or power); absent in files from before it existed. */
  render?: string;
  /** Where the images came from (a path inside the data root), for the record. */
  source?: string;
  /** Anything else the spectrogram task recorded (e.g. the image format). */
  [more: string]: unknown;
}

const MAX_BYTES = 64 * 1024;

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/**
 * The parameters if `value` looks like a signal section (every slicing field present with the
 * right type), else null: a hand-edited or foreign file is ignored, never trusted half-way.
 */
export function asSignalParams(value: unknown): SignalParams | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  const numbers = ['sample_rate', 'stft_point', 'duration_time', 'ratio', 'width', 'height'];
  if (!numbers.every((k) => isNum(v[k]))) return null;
  if (v.dtype !== 'float32' && v.dtype !== 'int16') return null;
  return { ...v, noverlap: isNum(v.noverlap) ? v.noverlap : (v.stft_point as number) / 2 } as SignalParams;
}

/** Folders known to hold no signal file, as they are now (the usual case: one stat to confirm). */
const withoutSignalFile = new PerFolderVersion<true>();

/** What is at a path (null: nothing); a submission passes its sandbox view's `stat`, which remembers. */
type StatOf = (p: string) => Stats | null;
const statOrMissing: StatOf = (p) => statSync(p, { throwIfNoEntry: false }) ?? null;

/** `dir/signal.json`, or null when there is none (or it is not a signal file). */
export async function readSignalFile(
  dir: string,
  statOf: StatOf = statOrMissing,
): Promise<SignalParams | null> {
  const dirStat = statOf(dir);
  if (!dirStat?.isDirectory() || withoutSignalFile.get(dir, dirStat)) return null;
  const file = path.join(dir, SIGNAL_FILE);
  try {
    const st = lstatSync(file, { throwIfNoEntry: false });
    if (!st) {
      withoutSignalFile.set(dir, dirStat, true);
      return null;
    }
    if (!st.isFile() || st.size > MAX_BYTES) return null;
    return asSignalParams(JSON.parse(await fs.readFile(file, 'utf8')));
  } catch {
    return null;
  }
}

/**
 * The signal file that describes an image folder: in it, or in the folder above (a split's
 * `train/` lies under the root that holds the file), or the one above that (`train/<class>`).
 */
export async function findSignalFile(
  dir: string,
  stopAt: string,
  statOf: StatOf = statOrMissing,
): Promise<SignalParams | null> {
  let at = path.resolve(dir);
  const root = path.resolve(stopAt);
  for (let up = 0; up < 3; up++) {
    const found = await readSignalFile(at, statOf);
    if (found) return found;
    if (at === root || !at.startsWith(root + path.sep)) break;
    at = path.dirname(at);
  }
  return null;
}

/** Writes a signal file (`file` is checked by the caller: the sandbox's path for dir/signal.json). */
export async function writeSignalFile(file: string, params: SignalParams): Promise<void> {
  await fs.writeFile(file, `${JSON.stringify(params, null, 2)}\n`);
}

/**
 * Copies the signal file that describes `fromDir` (split, augment: their input) to `toFile` (in
 * their output); returns whether there was one.
 */
export async function carrySignalFile(fromDir: string, toFile: string, stopAt: string): Promise<boolean> {
  const found = await findSignalFile(fromDir, stopAt);
  if (!found) return false;
  await writeSignalFile(toFile, found);
  return true;
}
