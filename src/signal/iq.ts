import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Raw IQ sample formats: interleaved little-endian I, Q pairs. */
export type IqDtype = 'float32' | 'int16';

/** Bytes per complex sample (one I and one Q). */
export const COMPLEX_SAMPLE_BYTES: Record<IqDtype, number> = { float32: 8, int16: 4 };

export class IqFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IqFormatError';
  }
}

/** Size check without reading the data: a file must hold a whole number of complex samples. */
export async function iqSampleCount(file: string, dtype: IqDtype): Promise<number> {
  const { size } = await fs.promises.stat(file);
  const per = COMPLEX_SAMPLE_BYTES[dtype];
  if (size % per !== 0) {
    throw new IqFormatError(
      `${file} is ${size} bytes, not a whole number of ${dtype} complex samples (${per} bytes each: I and Q)`,
    );
  }
  return size / per;
}

export interface IqSlice {
  /** 0-based slice number within the file. */
  index: number;
  /** Interleaved I, Q as float32 (int16 input is converted value for value, unscaled). */
  iq: Float32Array;
}

export interface ReadIqOptions {
  dtype: IqDtype;
  /** Complex samples per slice (sample_rate × duration_time). */
  samplesPerSlice: number;
  signal?: AbortSignal;
  /** Called once when the file ends in a partial slice, which is dropped. */
  onTruncated?: (samplesDropped: number) => void;
  /** Yield a trailing partial slice (shorter) instead of dropping it. */
  keepPartial?: boolean;
  /** Read size; small values are for tests of chunk boundaries. */
  chunkBytes?: number;
}

const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

/** Little-endian values of `buf` into `target` from `at` (for formats not copied byte for byte). */
function decodeInto(target: Float32Array, at: number, buf: Buffer, count: number, dtype: IqDtype): void {
  if (dtype === 'float32') for (let v = 0; v < count; v++) target[at + v] = buf.readFloatLE(v * 4);
  else for (let v = 0; v < count; v++) target[at + v] = buf.readInt16LE(v * 2);
}

/**
 * Streams a recording slice by slice: memory holds one slice (plus one read chunk) whatever the
 * file's size. A trailing partial slice is dropped and reported through `onTruncated`. float32
 * on a little-endian host is read straight into the slice's memory. (The spectrogram task does
 * not use this: its workers read their own slices with readSamplesSync.)
 */
export async function* readIqSlices(file: string, opts: ReadIqOptions): AsyncGenerator<IqSlice> {
  const { dtype, samplesPerSlice } = opts;
  if (!Number.isInteger(samplesPerSlice) || samplesPerSlice < 1) {
    throw new RangeError(`samples per slice must be a positive integer (got ${samplesPerSlice})`);
  }
  const total = await iqSampleCount(file, dtype);
  const valueBytes = dtype === 'float32' ? 4 : 2;
  const direct = dtype === 'float32' && LITTLE_ENDIAN_HOST;
  // Whole values per read; reads stay bounded so a cancel is noticed between them.
  const chunk = Math.max(
    valueBytes,
    Math.floor((opts.chunkBytes ?? 8 * 1024 * 1024) / valueBytes) * valueBytes,
  );
  const scratch = direct ? null : Buffer.alloc(chunk);
  const fh = await fs.promises.open(file, 'r');
  const aborted = () => opts.signal?.aborted === true;
  const reason = () => (opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
  try {
    let position = 0;
    let index = 0;
    const fullSlices = Math.floor(total / samplesPerSlice);
    const tail = total - fullSlices * samplesPerSlice;
    const sliceCount = fullSlices + (tail > 0 && opts.keepPartial ? 1 : 0);
    for (; index < sliceCount; index++) {
      const samples = Math.min(samplesPerSlice, total - index * samplesPerSlice);
      const slice = new Float32Array(2 * samples);
      const target = new Uint8Array(slice.buffer);
      let filled = 0; // values
      while (filled < slice.length) {
        if (aborted()) throw reason();
        const want = Math.min(chunk, (slice.length - filled) * valueBytes);
        const into = direct
          ? target.subarray(filled * 4, filled * 4 + want)
          : (scratch as Buffer).subarray(0, want);
        const { bytesRead } = await fh.read(into, 0, want, position);
        if (bytesRead !== want) throw new IqFormatError(`${file} changed while being read`);
        position += want;
        if (!direct) decodeInto(slice, filled, scratch as Buffer, want / valueBytes, dtype);
        filled += want / valueBytes;
      }
      yield { index, iq: slice };
    }
    if (tail > 0 && !opts.keepPartial) opts.onTruncated?.(tail);
  } finally {
    await fh.close();
  }
}

/**
 * Reads `target.length / 2` complex samples from sample `first` of an open recording into
 * `target`, synchronously (for worker threads, which read their own slice). float32 on a
 * little-endian host goes straight into `target`'s memory.
 */
export function readSamplesSync(fd: number, dtype: IqDtype, first: number, target: Float32Array): void {
  const valueBytes = dtype === 'float32' ? 4 : 2;
  let position = first * 2 * valueBytes;
  const bytes = target.length * valueBytes;
  const chunk = 8 * 1024 * 1024;
  if (dtype === 'float32' && LITTLE_ENDIAN_HOST) {
    const into = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
    for (let done = 0; done < bytes;) {
      const n = fs.readSync(fd, into, done, Math.min(chunk, bytes - done), position);
      if (n === 0)
        throw new IqFormatError('the recording is shorter than expected (changed while being read?)');
      done += n;
      position += n;
    }
    return;
  }
  const scratch = Buffer.alloc(Math.min(chunk, bytes));
  for (let value = 0; value < target.length;) {
    const want = Math.min(scratch.length, (target.length - value) * valueBytes);
    const n = fs.readSync(fd, scratch, 0, want, position);
    if (n < want)
      throw new IqFormatError('the recording is shorter than expected (changed while being read?)');
    position += n;
    decodeInto(target, value, scratch, n / valueBytes, dtype);
    value += n / valueBytes;
  }
}

/** Raw IQ recordings, by extension. */
export const RECORDING_EXTENSIONS = new Set(['.iq', '.dat']);

export function isRecording(name: string): boolean {
  return !name.startsWith('.') && RECORDING_EXTENSIONS.has(path.extname(name).toLowerCase());
}
