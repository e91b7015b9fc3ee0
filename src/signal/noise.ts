/**
 * Adds white Gaussian noise to an existing recording at a target SNR, streamed in two passes
 * (measure, then write), so recordings of any size fit in memory.
 *
 * SNR is the recording's average power over the added noise's power inside the occupied band.
 * The band is given (`occupiedFraction`) or estimated as the 99 % power bandwidth (ITU-R SM.328)
 * of the recording's averaged spectrum. The input's own noise counts as signal: on a noisy
 * recording the result is the SNR of the *added* noise.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import FFT from 'fft.js';
import { gaussian, hash32, mulberry32 } from '../util/random.js';
import { readIqSlices, type IqDtype } from './iq.js';

const PSD_POINTS = 1024;
const CHUNK_SAMPLES = 1 << 16;

export interface AddNoiseOptions {
  snrDb: number;
  dtype?: IqDtype;
  seed?: number;
  /** Occupied bandwidth as a fraction of the sample rate (0–1]; estimated when absent. */
  occupiedFraction?: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export interface AddNoiseReport {
  samples: number;
  signal_power: number;
  noise_power: number;
  occupied_fraction: number;
  occupied_estimated: boolean;
  snr_db: number;
  snr_measured_db: number;
  seed: number;
}

/** Smallest fraction of spectrum bins holding `share` of the power (sorted largest first). */
export function powerBandwidthFraction(psd: Float64Array, share = 0.99): number {
  const sorted = Array.from(psd).sort((a, b) => b - a);
  const total = sorted.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return 1;
  let acc = 0;
  for (let i = 0; i < sorted.length; i++) {
    acc += sorted[i] as number;
    if (acc >= share * total) return (i + 1) / sorted.length;
  }
  return 1;
}

/** Average power and averaged periodogram (Hann window, no overlap) of a recording. */
export async function measureRecording(
  file: string,
  dtype: IqDtype = 'float32',
  signal?: AbortSignal,
): Promise<{ samples: number; power: number; psd: Float64Array }> {
  const fft = new FFT(PSD_POINTS);
  const window = Float64Array.from(
    { length: PSD_POINTS },
    (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / PSD_POINTS),
  );
  const frame = fft.createComplexArray() as number[];
  const spec = fft.createComplexArray() as number[];
  const psd = new Float64Array(PSD_POINTS);
  let energy = 0;
  let seen = 0;
  const tally = (iq: Float32Array, n: number) => {
    for (let i = 0; i < 2 * n; i++) energy += (iq[i] as number) ** 2;
    for (let f = 0; f + PSD_POINTS <= n; f += PSD_POINTS) {
      for (let k = 0; k < PSD_POINTS; k++) {
        const w = window[k] as number;
        frame[2 * k] = w * (iq[2 * (f + k)] as number);
        frame[2 * k + 1] = w * (iq[2 * (f + k) + 1] as number);
      }
      fft.transform(spec, frame);
      for (let k = 0; k < PSD_POINTS; k++) {
        psd[k] = (psd[k] as number) + (spec[2 * k] as number) ** 2 + (spec[2 * k + 1] as number) ** 2;
      }
    }
    seen += n;
  };
  // CHUNK_SAMPLES is a multiple of PSD_POINTS: every chunk but the last holds whole PSD frames.
  for await (const s of readIqSlices(file, {
    dtype,
    samplesPerSlice: CHUNK_SAMPLES,
    signal,
    keepPartial: true,
  })) {
    tally(s.iq, s.iq.length / 2);
  }
  return { samples: seen, power: seen > 0 ? energy / seen : 0, psd };
}

/** Writes `output` (float32 I, Q) = `input` + white Gaussian noise at `snrDb` over the occupied band. */
export async function addNoiseAtSnr(
  input: string,
  output: string,
  opts: AddNoiseOptions,
): Promise<AddNoiseReport> {
  const dtype = opts.dtype ?? 'float32';
  if (!Number.isFinite(opts.snrDb)) throw new RangeError('SNR must be a finite number of dB');
  if (opts.occupiedFraction !== undefined && !(opts.occupiedFraction > 0 && opts.occupiedFraction <= 1)) {
    throw new RangeError(`occupied fraction must be in (0, 1] (got ${opts.occupiedFraction})`);
  }
  if (path.resolve(input) === path.resolve(output)) {
    throw new RangeError('the output must be another file than the input (it is read twice while writing)');
  }
  const seed = opts.seed ?? 0;
  const measured = await measureRecording(input, dtype, opts.signal);
  if (!(measured.power > 0))
    throw new RangeError(`${input} holds no signal power: nothing to scale noise to`);
  const occupied = opts.occupiedFraction ?? powerBandwidthFraction(measured.psd);
  const noisePower = measured.power / (occupied * 10 ** (opts.snrDb / 10));
  const std = Math.sqrt(noisePower / 2);
  const normal = gaussian(mulberry32(hash32(`addnoise:${seed}`)));
  let noiseEnergy = 0;
  let written = 0;
  const fh = await fs.open(output, 'w');
  try {
    const write = async (iq: Float32Array) => {
      for (let i = 0; i < iq.length; i++) {
        const n = std * normal();
        noiseEnergy += n * n;
        iq[i] = (iq[i] as number) + n;
      }
      await fh.write(new Uint8Array(iq.buffer, iq.byteOffset, iq.byteLength));
      written += iq.length / 2;
      opts.onProgress?.(measured.samples > 0 ? written / measured.samples : 1);
    };
    for await (const s of readIqSlices(input, {
      dtype,
      samplesPerSlice: CHUNK_SAMPLES,
      signal: opts.signal,
      keepPartial: true,
    })) {
      await write(s.iq);
    }
  } finally {
    await fh.close();
  }
  const addedPower = written > 0 ? noiseEnergy / written : 0;
  return {
    samples: written,
    signal_power: measured.power,
    noise_power: addedPower,
    occupied_fraction: occupied,
    occupied_estimated: opts.occupiedFraction === undefined,
    snr_db: opts.snrDb,
    snr_measured_db: 10 * Math.log10(measured.power / (addedPower * occupied)),
    seed,
  };
}
