import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { addNoiseAtSnr, measureRecording, powerBandwidthFraction } from '../../src/signal/noise.js';
import {
  CLASS_PROFILES,
  hopChannels,
  occupiedFraction,
  writeDataset,
  writeRecording,
  type ClassProfile,
  type DatasetManifest,
} from '../../src/signal/synth.js';
import { tmpDir } from '../helpers.js';

const dir = tmpDir();
const FS = 1e6;

/** Spectrum bin (of `n`, fftshift-free numbering as measureRecording returns) → frequency in [-0.5, 0.5). */
function binFrequency(k: number, n: number): number {
  return k < n / 2 ? k / n : k / n - 1;
}

function inBand(profile: ClassProfile, f: number, margin: number): boolean {
  const half = profile.hop.bandwidth / 2 + margin;
  if (hopChannels(profile.hop).some((c) => Math.abs(f - c) <= half)) return true;
  const v = profile.video;
  return v !== null && Math.abs(f - v.centre) <= v.bandwidth / 2 + margin;
}

describe('synthetic RF generator', () => {
  it('is reproducible, independent of chunking, and sized as asked', async () => {
    const profile = CLASS_PROFILES[0] as ClassProfile;
    const opts = { sampleRate: FS, durationS: 0.05, snrDb: 5, seed: 42 };
    const a = path.join(dir, 'a.iq');
    const b = path.join(dir, 'b.iq');
    const c = path.join(dir, 'c.iq');
    const ra = await writeRecording(a, profile, opts);
    await writeRecording(b, profile, { ...opts, chunkSamples: 777 });
    await writeRecording(c, profile, { ...opts, seed: 43 });
    assert.equal(fs.statSync(a).size, 50_000 * 8);
    assert.equal(ra.samples, 50_000);
    assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)), 'chunk size changed the bytes');
    assert.ok(!fs.readFileSync(a).equals(fs.readFileSync(c)), 'another seed gave the same bytes');
  });

  it('hits the target SNR over the occupied band and keeps its energy inside the documented bands', async () => {
    for (const profile of CLASS_PROFILES) {
      const file = path.join(dir, `${profile.name}.iq`);
      for (const snr of [-5, 10]) {
        const r = await writeRecording(file, profile, {
          sampleRate: FS,
          durationS: 0.1,
          snrDb: snr,
          seed: 7,
        });
        assert.ok(
          Math.abs(r.snr_measured_db - snr) < 0.3,
          `${profile.name} at ${snr} dB: ${r.snr_measured_db}`,
        );
        assert.equal(r.occupied_bandwidth_hz, occupiedFraction(profile) * FS);
      }
      // Nearly noise-free: the spectrum shows where the signal really is. At 10 MS/s even the
      // shortest bursts (140 µs) are long enough for their spectrum to be as narrow as documented.
      await writeRecording(file, profile, { sampleRate: 10 * FS, durationS: 0.02, snrDb: 60, seed: 7 });
      const { psd } = await measureRecording(file);
      let inside = 0;
      let total = 0;
      psd.forEach((p, k) => {
        total += p;
        if (inBand(profile, binFrequency(k, psd.length), 3 / psd.length)) inside += p;
      });
      assert.ok(
        inside / total > 0.97,
        `${profile.name}: only ${((100 * inside) / total).toFixed(1)} % in band`,
      );
      assert.ok(occupiedFraction(profile) < 0.95, `${profile.name} fills the band`);
    }
  });

  it('writes class folders, a manifest, and classes that total power alone does not separate', async () => {
    const out = path.join(dir, 'ds');
    const seen: number[] = [];
    await writeDataset({
      out,
      classes: 4,
      perClass: 6,
      sampleRate: FS,
      durationS: 0.02,
      snrsDb: [0, 10],
      seed: 1,
      onRecording: (done) => seen.push(done),
    });
    assert.deepEqual(
      seen,
      Array.from({ length: 24 }, (_, i) => i + 1),
    );
    assert.deepEqual(fs.readdirSync(out).sort(), ['alpha', 'bravo', 'charlie', 'delta', 'manifest.json']);
    assert.equal(fs.readdirSync(path.join(out, 'alpha')).length, 6);
    assert.ok(fs.existsSync(path.join(out, 'alpha', 'alpha_snr0dB_0001.iq')));
    assert.ok(fs.existsSync(path.join(out, 'alpha', 'alpha_snr10dB_0002.iq')));
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as DatasetManifest;
    assert.equal(saved.recordings.length, 24);
    assert.deepEqual(
      saved.classes.map((c) => c.name),
      ['alpha', 'bravo', 'charlie', 'delta'],
    );
    // Total power per recording: every pair of classes overlaps, so no threshold splits them.
    const byClass = new Map<string, number[]>();
    for (const r of saved.recordings) {
      const { power } = await measureRecording(path.join(out, r.path));
      assert.ok(Math.abs(power - (r.signal_power + r.noise_power)) / power < 0.05);
      byClass.set(r.class, [...(byClass.get(r.class) ?? []), 10 * Math.log10(power)]);
    }
    const ranges = [...byClass.values()].map((p) => [Math.min(...p), Math.max(...p)] as const);
    for (const [i, a] of ranges.entries()) {
      for (const b of ranges.slice(i + 1)) {
        assert.ok(a[0] < b[1] && b[0] < a[1], `power ranges ${a} and ${b} do not overlap`);
      }
    }
    await assert.rejects(
      writeDataset({ out, classes: 9, perClass: 1, sampleRate: FS, durationS: 0.01, snrsDb: [0], seed: 1 }),
      /classes must be 1–8/,
    );
  });
});

describe('adding noise to a recording', () => {
  it('measures the 99 % power bandwidth', () => {
    const psd = new Float64Array(100);
    psd[3] = 1000;
    psd[4] = 1000;
    psd.fill(0.001, 10);
    assert.equal(powerBandwidthFraction(psd), 0.02);
    assert.equal(powerBandwidthFraction(new Float64Array(10).fill(1)), 1);
    assert.equal(powerBandwidthFraction(new Float64Array(10)), 1);
  });

  it('adds noise at the target SNR over a given or estimated band, for float32 and int16, any length', async () => {
    // A pure tone: the estimated occupied band is a few bins.
    const n = 70_001; // not a multiple of any chunk
    const tone = new Float32Array(2 * n);
    const int16 = new Int16Array(2 * n);
    for (let i = 0; i < n; i++) {
      tone[2 * i] = Math.cos(2 * Math.PI * 0.1 * i);
      tone[2 * i + 1] = Math.sin(2 * Math.PI * 0.1 * i);
      int16[2 * i] = Math.round(1000 * (tone[2 * i] as number));
      int16[2 * i + 1] = Math.round(1000 * (tone[2 * i + 1] as number));
    }
    const f32 = path.join(dir, 'tone.iq');
    const i16 = path.join(dir, 'tone16.iq');
    fs.writeFileSync(f32, new Uint8Array(tone.buffer));
    fs.writeFileSync(i16, new Uint8Array(int16.buffer));

    const out = path.join(dir, 'tone-noisy.iq');
    const est = await addNoiseAtSnr(f32, out, { snrDb: 3, seed: 1 });
    assert.equal(fs.statSync(out).size, n * 8);
    assert.equal(est.samples, n);
    assert.ok(est.occupied_estimated);
    assert.ok(est.occupied_fraction < 0.01, `tone occupies ${est.occupied_fraction}`);
    assert.ok(Math.abs(est.snr_measured_db - 3) < 0.1, String(est.snr_measured_db));
    // Measured independently: output power = signal + noise.
    const measured = await measureRecording(out);
    const expectedNoise = 1 / (est.occupied_fraction * 10 ** 0.3);
    assert.ok(Math.abs(measured.power - (1 + expectedNoise)) / (1 + expectedNoise) < 0.03);

    const given = await addNoiseAtSnr(i16, out, { snrDb: 0, dtype: 'int16', occupiedFraction: 0.5, seed: 2 });
    assert.equal(given.occupied_fraction, 0.5);
    assert.ok(!given.occupied_estimated);
    assert.ok(Math.abs(given.noise_power - 1e6 / 0.5) / 2e6 < 0.03, String(given.noise_power));
    assert.equal(fs.statSync(out).size, n * 8, 'output is float32');

    await assert.rejects(addNoiseAtSnr(f32, out, { snrDb: 0, occupiedFraction: 2 }), /occupied fraction/);
    await assert.rejects(addNoiseAtSnr(f32, f32, { snrDb: 0 }), /another file than the input/);
    assert.equal(fs.statSync(f32).size, n * 8, 'the input is untouched');
    const silent = path.join(dir, 'silent.iq');
    fs.writeFileSync(silent, Buffer.alloc(8 * 100));
    await assert.rejects(addNoiseAtSnr(silent, out, { snrDb: 0 }), /no signal power/);
  });
});
