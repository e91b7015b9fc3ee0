import fs from 'node:fs';
import os from 'node:os';

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

/**
 * Streams a recording slice by slice: memory holds one slice (plus one read chunk) whatever the
 * file's size. A trailing partial slice is dropped and reported through `onTruncated`.
 */
export async function* readIqSlices(file: string, opts: ReadIqOptions): AsyncGenerator<IqSlice> {
  const { dtype, samplesPerSlice } = opts;
  if (!Number.isInteger(samplesPerSlice) || samplesPerSlice < 1) {
    throw new RangeError(`samples per slice must be a positive integer (got ${samplesPerSlice})`);
  }
  await iqSampleCount(file, dtype);
  const valueBytes = dtype === 'float32' ? 4 : 2;
  const sliceValues = 2 * samplesPerSlice;
  let slice = new Float32Array(sliceValues);
  let filled = 0; // values written into `slice`
  let carry = Buffer.alloc(0); // bytes of an incomplete value from the previous chunk
  let index = 0;
  const stream = fs.createReadStream(file, { highWaterMark: opts.chunkBytes ?? 4 * 1024 * 1024 });
  const abort = () =>
    stream.destroy(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
  opts.signal?.addEventListener('abort', abort, { once: true });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let bytes = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      const usable = bytes.length - (bytes.length % valueBytes);
      carry = Buffer.from(bytes.subarray(usable));
      bytes = bytes.subarray(0, usable);
      let at = 0;
      while (at < bytes.length) {
        if (opts.signal?.aborted)
          throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted');
        const values = Math.min((bytes.length - at) / valueBytes, sliceValues - filled);
        const part = bytes.subarray(at, at + values * valueBytes);
        if (dtype === 'float32' && LITTLE_ENDIAN_HOST) {
          // Same byte layout: copy straight into the slice's memory.
          part.copy(new Uint8Array(slice.buffer, filled * 4, values * 4));
        } else if (dtype === 'float32') {
          for (let v = 0; v < values; v++) slice[filled + v] = part.readFloatLE(v * 4);
        } else {
          for (let v = 0; v < values; v++) slice[filled + v] = part.readInt16LE(v * 2);
        }
        filled += values;
        at += values * valueBytes;
        if (filled === sliceValues) {
          yield { index: index++, iq: slice };
          slice = new Float32Array(sliceValues);
          filled = 0;
        }
      }
    }
  } finally {
    opts.signal?.removeEventListener('abort', abort);
    stream.destroy();
  }
  if (filled > 0 && opts.keepPartial) yield { index, iq: slice.subarray(0, filled) };
  else if (filled > 0) opts.onTruncated?.(filled / 2);
}
