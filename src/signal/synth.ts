/**
 * Synthetic drone-like RF recordings with ground truth (SPEC §3): per class a documented mix of
 * frequency-hopping control bursts and a wideband, bursty video link, plus additive white Gaussian
 * noise at a chosen SNR. Written as interleaved little-endian float32 I, Q — the format the
 * spectrogram task reads — generated and written in chunks, so memory does not grow with the
 * recording's length. Everything is seeded: the same arguments give the same bytes.
 *
 * Frequencies are fractions of the sample rate (so a class looks the same at any rate, within
 * ±0.5); times are in seconds.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import FFT from 'fft.js';
import { gaussian, hash32, mulberry32 } from '../util/random.js';

export interface HopProfile {
  /** Number of hop channels, evenly spaced over `span` around `centre`. */
  channels: number;
  span: number;
  centre: number;
  /** Occupied bandwidth of one burst (continuous-phase FSK). */
  bandwidth: number;
  /** Time on one channel before the next hop. */
  dwell_s: number;
  /** Fraction of each dwell the burst is on. */
  duty: number;
  /** Hops before the channel sequence repeats. */
  period: number;
}

export interface VideoProfile {
  /** OFDM block: occupied bandwidth and centre offset. */
  bandwidth: number;
  centre: number;
  /** Burst pattern: on for `on_s`, then off for `off_s`, repeating. */
  on_s: number;
  off_s: number;
  /** Power while on, relative to a control burst's. */
  power: number;
}

export interface ClassProfile {
  name: string;
  summary: string;
  hop: HopProfile;
  video: VideoProfile | null;
}

/**
 * The built-in classes. Each differs from the others in several visible traits at once (hop
 * channel grid, burst width and length, pattern period, video band, position and rhythm), while
 * every class has the same average signal power, so total power alone does not tell them apart.
 */
export const CLASS_PROFILES: readonly ClassProfile[] = [
  {
    name: 'alpha',
    summary: '16 narrow hop channels over 70 % of the band, 1 ms dwell; video block low, 6 ms on / 2 ms off',
    hop: { channels: 16, span: 0.7, centre: 0, bandwidth: 0.012, dwell_s: 1e-3, duty: 0.45, period: 16 },
    video: { bandwidth: 0.18, centre: -0.22, on_s: 6e-3, off_s: 2e-3, power: 3 },
  },
  {
    name: 'bravo',
    summary: '8 wide hop channels in the upper band, 2.5 ms dwell; wide video block low, nearly continuous',
    hop: { channels: 8, span: 0.3, centre: 0.25, bandwidth: 0.025, dwell_s: 2.5e-3, duty: 0.8, period: 8 },
    video: { bandwidth: 0.3, centre: -0.2, on_s: 9e-3, off_s: 1e-3, power: 2 },
  },
  {
    name: 'charlie',
    summary: '40 very narrow hop channels over 85 % of the band, 0.4 ms dwell, short bursts; no video',
    hop: { channels: 40, span: 0.85, centre: 0, bandwidth: 0.006, dwell_s: 0.4e-3, duty: 0.35, period: 40 },
    video: null,
  },
  {
    name: 'delta',
    summary: '4 hop channels packed low, 5 ms dwell; narrow video block high, 1.5 ms on / 1.5 ms off',
    hop: { channels: 4, span: 0.12, centre: -0.3, bandwidth: 0.02, dwell_s: 5e-3, duty: 0.6, period: 4 },
    video: { bandwidth: 0.1, centre: 0.15, on_s: 1.5e-3, off_s: 1.5e-3, power: 2 },
  },
  {
    name: 'echo',
    summary:
      '24 channels, but a 6-hop pattern that repeats, 1.5 ms dwell, 20 % duty; video high, 3 ms on / 6 ms off',
    hop: { channels: 24, span: 0.5, centre: -0.15, bandwidth: 0.01, dwell_s: 1.5e-3, duty: 0.2, period: 6 },
    video: { bandwidth: 0.12, centre: 0.3, on_s: 3e-3, off_s: 6e-3, power: 4 },
  },
  {
    name: 'foxtrot',
    summary: '12 broad hop channels over 80 % of the band, 0.8 ms dwell, 70 % duty; no video',
    hop: { channels: 12, span: 0.8, centre: 0, bandwidth: 0.04, dwell_s: 0.8e-3, duty: 0.7, period: 12 },
    video: null,
  },
  {
    name: 'golf',
    summary: '6 hop channels high, 3 ms dwell, 3-hop pattern; very wide video block, 2 ms on / 8 ms off',
    hop: { channels: 6, span: 0.2, centre: 0.33, bandwidth: 0.015, dwell_s: 3e-3, duty: 0.3, period: 3 },
    video: { bandwidth: 0.4, centre: -0.1, on_s: 2e-3, off_s: 8e-3, power: 2 },
  },
  {
    name: 'hotel',
    summary: '20 narrow hop channels low, 0.6 ms dwell, 90 % duty; video high, 12 ms on / 4 ms off',
    hop: { channels: 20, span: 0.3, centre: -0.28, bandwidth: 0.008, dwell_s: 0.6e-3, duty: 0.9, period: 20 },
    video: { bandwidth: 0.2, centre: 0.25, on_s: 12e-3, off_s: 4e-3, power: 1 },
  },
];

export function hopChannels(hop: HopProfile): number[] {
  if (hop.channels === 1) return [hop.centre];
  return Array.from(
    { length: hop.channels },
    (_, k) => hop.centre + hop.span * (k / (hop.channels - 1) - 0.5),
  );
}

/** Fraction of the band the class occupies: the union of its hop channels and video block. */
export function occupiedFraction(profile: ClassProfile): number {
  const intervals: [number, number][] = hopChannels(profile.hop).map((f) => [
    f - profile.hop.bandwidth / 2,
    f + profile.hop.bandwidth / 2,
  ]);
  if (profile.video) {
    const v = profile.video;
    intervals.push([v.centre - v.bandwidth / 2, v.centre + v.bandwidth / 2]);
  }
  intervals.sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [lo, hi] = intervals[0] as [number, number];
  for (const [a, b] of intervals.slice(1)) {
    if (a > hi) {
      total += hi - lo;
      [lo, hi] = [a, b];
    } else hi = Math.max(hi, b);
  }
  return Math.min(1, total + (hi - lo));
}

/** Continuous-phase FSK bursts hopping over the class's channel grid. */
class HopSource {
  private readonly channels: number[];
  private readonly pattern: number[];
  private readonly dwell: number;
  private readonly on: number;
  private readonly symbol: number;
  private readonly deviation: number;
  private readonly offset: number;
  private phase = 0;
  private bit = 1;

  constructor(
    private readonly hop: HopProfile,
    sampleRate: number,
    private readonly rand: () => number,
  ) {
    this.channels = hopChannels(hop);
    // A per-recording channel sequence of `period` hops, never the same channel twice in a row.
    this.pattern = [];
    for (let i = 0; i < hop.period; i++) {
      let c = Math.floor(rand() * this.channels.length);
      if (this.channels.length > 1 && i > 0 && c === this.pattern[i - 1]) c = (c + 1) % this.channels.length;
      this.pattern.push(c);
    }
    this.dwell = Math.max(1, Math.round(hop.dwell_s * sampleRate));
    this.on = Math.max(1, Math.round(hop.duty * this.dwell));
    // Carson: bandwidth ≈ 2 (deviation + symbol rate); both a quarter of the burst bandwidth.
    this.deviation = hop.bandwidth / 4;
    this.symbol = Math.max(1, Math.round(4 / hop.bandwidth));
    this.offset = Math.floor(rand() * this.dwell * hop.period);
    // Bursts ramp up and down (raised cosine over a tenth of the burst each side), as a
    // transmitter does, instead of switching abruptly and splattering across the band.
    const ramp = Math.max(1, Math.min(Math.floor(this.on / 2), Math.round(this.on / 10)));
    this.envelope = Float64Array.from({ length: this.on }, (_, k) => {
      const edge = Math.min(k, this.on - 1 - k);
      return edge >= ramp ? 1 : Math.sin((Math.PI / 2) * ((edge + 0.5) / ramp)) ** 2;
    });
    this.power = this.envelope.reduce((a, e) => a + e * e, 0) / this.dwell;
  }

  private readonly envelope: Float64Array;
  /** Average power over a dwell (a burst has unit power at full envelope). */
  readonly power: number;

  add(re: Float64Array, im: Float64Array, start: number, n: number, amplitude: number): void {
    for (let i = 0; i < n; i++) {
      const t = start + i + this.offset;
      const pos = t % this.dwell;
      if (pos >= this.on) continue;
      if (pos === 0) this.phase = 2 * Math.PI * this.rand(); // a new burst
      if (pos % this.symbol === 0) this.bit = this.rand() < 0.5 ? -1 : 1;
      const hopIndex = Math.floor(t / this.dwell) % this.pattern.length;
      const f = (this.channels[this.pattern[hopIndex] as number] as number) + this.bit * this.deviation;
      this.phase += 2 * Math.PI * f;
      this.phase -= 2 * Math.PI * Math.round(this.phase / (2 * Math.PI));
      const a = amplitude * (this.envelope[pos] as number);
      re[i] = (re[i] as number) + a * Math.cos(this.phase);
      im[i] = (im[i] as number) + a * Math.sin(this.phase);
    }
  }
}

/** An OFDM-like video link: QPSK on every subcarrier of its block, in on/off bursts. */
class VideoSource {
  private static readonly SIZE = 256;
  private static readonly CYCLIC_PREFIX = 32;
  private readonly fft = new FFT(VideoSource.SIZE);
  private readonly bins: number[];
  private readonly onSamples: number;
  private readonly periodSamples: number;
  private readonly offset: number;
  private readonly symbolRe = new Float64Array(VideoSource.SIZE + VideoSource.CYCLIC_PREFIX);
  private readonly symbolIm = new Float64Array(VideoSource.SIZE + VideoSource.CYCLIC_PREFIX);

  constructor(
    video: VideoProfile,
    sampleRate: number,
    private readonly rand: () => number,
  ) {
    const M = VideoSource.SIZE;
    const first = Math.round((video.centre - video.bandwidth / 2) * M);
    const last = Math.round((video.centre + video.bandwidth / 2) * M);
    this.bins = [];
    for (let k = first; k <= last; k++) this.bins.push(((k % M) + M) % M);
    this.onSamples = Math.max(1, Math.round(video.on_s * sampleRate));
    this.periodSamples = this.onSamples + Math.max(0, Math.round(video.off_s * sampleRate));
    this.offset = Math.floor(rand() * this.periodSamples);
    this.nextSymbol(); // a recording may start in the middle of a symbol
  }

  get averagePower(): number {
    return this.onSamples / this.periodSamples;
  }

  private nextSymbol(): void {
    const M = VideoSource.SIZE;
    const spectrum = this.fft.createComplexArray() as number[];
    for (const k of this.bins) {
      spectrum[2 * k] = this.rand() < 0.5 ? -1 : 1;
      spectrum[2 * k + 1] = this.rand() < 0.5 ? -1 : 1;
    }
    const out = this.fft.createComplexArray() as number[];
    this.fft.inverseTransform(out, spectrum);
    let power = 0;
    for (let i = 0; i < 2 * M; i++) power += (out[i] as number) ** 2;
    const scale = 1 / Math.sqrt(power / M); // unit power while on
    const cp = VideoSource.CYCLIC_PREFIX;
    for (let i = 0; i < M + cp; i++) {
      const j = (i - cp + M) % M;
      this.symbolRe[i] = (out[2 * j] as number) * scale;
      this.symbolIm[i] = (out[2 * j + 1] as number) * scale;
    }
  }

  add(re: Float64Array, im: Float64Array, start: number, n: number, amplitude: number): void {
    const L = VideoSource.SIZE + VideoSource.CYCLIC_PREFIX;
    for (let i = 0; i < n; i++) {
      const t = start + i + this.offset;
      const pos = t % this.periodSamples;
      if (pos >= this.onSamples) continue;
      const k = pos % L;
      if (k === 0) this.nextSymbol();
      re[i] = (re[i] as number) + amplitude * (this.symbolRe[k] as number);
      im[i] = (im[i] as number) + amplitude * (this.symbolIm[k] as number);
    }
  }
}

export interface RecordingOptions {
  sampleRate: number;
  durationS: number;
  snrDb: number;
  seed: number;
  /** Receiver gain drawn per recording, uniform in ±gainSpreadDb (default 6 dB). */
  gainSpreadDb?: number;
  /** Complex samples generated per write (tests use small values). */
  chunkSamples?: number;
}

export interface RecordingReport {
  samples: number;
  snr_db: number;
  /** Signal power over noise power in the occupied band, as generated. */
  snr_measured_db: number;
  occupied_bandwidth_hz: number;
  gain_db: number;
  signal_power: number;
  noise_power: number;
  seed: number;
}

/**
 * Writes one recording of `profile` to `file`. SNR is the recording's average signal power over
 * the noise power inside the class's occupied band (noise is white over the whole band).
 */
export async function writeRecording(
  file: string,
  profile: ClassProfile,
  opts: RecordingOptions,
): Promise<RecordingReport> {
  // One generator per source, so the bytes do not depend on how the work is chunked.
  const rand = mulberry32(opts.seed);
  const normal = gaussian(mulberry32(hash32(`noise:${opts.seed}`)));
  const hop = new HopSource(profile.hop, opts.sampleRate, mulberry32(hash32(`hop:${opts.seed}`)));
  const video = profile.video
    ? new VideoSource(profile.video, opts.sampleRate, mulberry32(hash32(`video:${opts.seed}`)))
    : null;
  const videoPower = profile.video?.power ?? 0;
  const nominal = hop.power + (video ? videoPower * video.averagePower : 0);
  const occupied = occupiedFraction(profile);
  // Unit average signal power for every class; noise set from it and the occupied band.
  const noisePower = 1 / (occupied * 10 ** (opts.snrDb / 10));
  const spread = opts.gainSpreadDb ?? 6;
  const gainDb = (2 * rand() - 1) * spread;
  const gain = 10 ** (gainDb / 20);
  const hopAmp = 1 / Math.sqrt(nominal);
  const videoAmp = Math.sqrt(videoPower / nominal);
  const noiseStd = Math.sqrt(noisePower / 2);

  const total = Math.round(opts.sampleRate * opts.durationS);
  const chunk = opts.chunkSamples ?? 1 << 16;
  const re = new Float64Array(chunk);
  const im = new Float64Array(chunk);
  const out = new Float32Array(2 * chunk);
  let signalEnergy = 0;
  let noiseEnergy = 0;
  await fs.mkdir(path.dirname(file), { recursive: true });
  const fh = await fs.open(file, 'w');
  try {
    for (let start = 0; start < total; start += chunk) {
      const n = Math.min(chunk, total - start);
      re.fill(0, 0, n);
      im.fill(0, 0, n);
      hop.add(re, im, start, n, hopAmp);
      video?.add(re, im, start, n, videoAmp);
      for (let i = 0; i < n; i++) {
        const sr = re[i] as number;
        const si = im[i] as number;
        const nr = noiseStd * normal();
        const ni = noiseStd * normal();
        signalEnergy += sr * sr + si * si;
        noiseEnergy += nr * nr + ni * ni;
        out[2 * i] = gain * (sr + nr);
        out[2 * i + 1] = gain * (si + ni);
      }
      await fh.write(new Uint8Array(out.buffer, 0, 8 * n));
    }
  } finally {
    await fh.close();
  }
  const signalPower = signalEnergy / Math.max(1, total);
  const measuredNoise = noiseEnergy / Math.max(1, total);
  return {
    samples: total,
    snr_db: opts.snrDb,
    snr_measured_db: 10 * Math.log10(signalPower / (measuredNoise * occupied)),
    occupied_bandwidth_hz: occupied * opts.sampleRate,
    gain_db: gainDb,
    signal_power: signalPower * gain * gain,
    noise_power: measuredNoise * gain * gain,
    seed: opts.seed,
  };
}

export interface DatasetOptions {
  out: string;
  classes: number;
  perClass: number;
  sampleRate: number;
  durationS: number;
  /** Assigned round-robin: recording i of a class gets snrs[i mod snrs.length]. */
  snrsDb: number[];
  seed: number;
  onRecording?: (done: number, total: number, file: string) => void;
  chunkSamples?: number;
}

export interface DatasetManifest {
  generator: string;
  sample_rate: number;
  duration_s: number;
  seed: number;
  snrs_db: number[];
  dtype: 'float32';
  classes: (ClassProfile & { occupied_fraction: number })[];
  recordings: ({ path: string; class: string } & RecordingReport)[];
}

export function snrTag(snr: number): string {
  return `snr${snr}dB`;
}

/**
 * Writes `classes` folders of `perClass` recordings each under `out`, and `out/manifest.json`
 * with every class's parameters and every recording's SNR (target and measured), gain and seed.
 */
export async function writeDataset(opts: DatasetOptions): Promise<DatasetManifest> {
  if (!Number.isInteger(opts.classes) || opts.classes < 1 || opts.classes > CLASS_PROFILES.length) {
    throw new RangeError(`classes must be 1–${CLASS_PROFILES.length} (got ${opts.classes})`);
  }
  if (!Number.isInteger(opts.perClass) || opts.perClass < 1) {
    throw new RangeError(`per-class must be a positive integer (got ${opts.perClass})`);
  }
  if (!(opts.sampleRate > 0) || !(opts.durationS > 0)) {
    throw new RangeError('sample rate and duration must be positive');
  }
  if (Math.round(opts.sampleRate * opts.durationS) < 1) {
    throw new RangeError('sample rate × duration gives no samples');
  }
  if (opts.snrsDb.length === 0 || opts.snrsDb.some((s) => !Number.isFinite(s))) {
    throw new RangeError('at least one finite SNR is needed');
  }
  const profiles = CLASS_PROFILES.slice(0, opts.classes);
  const manifest: DatasetManifest = {
    generator: 'rfuav synth v1',
    sample_rate: opts.sampleRate,
    duration_s: opts.durationS,
    seed: opts.seed,
    snrs_db: opts.snrsDb,
    dtype: 'float32',
    classes: profiles.map((p) => ({ ...p, occupied_fraction: occupiedFraction(p) })),
    recordings: [],
  };
  const total = profiles.length * opts.perClass;
  let done = 0;
  for (const profile of profiles) {
    for (let i = 0; i < opts.perClass; i++) {
      const snr = opts.snrsDb[i % opts.snrsDb.length] as number;
      const rel = path.join(
        profile.name,
        `${profile.name}_${snrTag(snr)}_${String(i + 1).padStart(4, '0')}.iq`,
      );
      const report = await writeRecording(path.join(opts.out, rel), profile, {
        sampleRate: opts.sampleRate,
        durationS: opts.durationS,
        snrDb: snr,
        seed: hash32(`${opts.seed}:${profile.name}:${i}`),
        chunkSamples: opts.chunkSamples,
      });
      manifest.recordings.push({ path: rel, class: profile.name, ...report });
      done++;
      opts.onRecording?.(done, total, rel);
    }
  }
  await fs.writeFile(path.join(opts.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
