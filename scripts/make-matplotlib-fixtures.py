#!/usr/bin/python3
"""Renders spectrogram images with matplotlib exactly as the reference pipeline does (its
graphic/RawDataProcessor.generate_images), into test/fixtures/matplotlib (run once; committed).

The reference: `10·log10|Z|` of the fftshift-ed two-sided STFT of a float32 IQ slice,
`plt.figure()`, `plt.imshow(aug, extent=..., aspect='auto', origin='lower', cmap='jet')`,
`plt.axis('off')`, `plt.subplots_adjust(left=0, right=1, bottom=0, top=1)`,
`plt.savefig(buffer, format='png', dpi=300)` — the default 6.4×4.8 in figure, so 1920×1440.
The other sizes change only figsize and dpi (640×480: the default figure at dpi 100; 224×224:
7×7 in at dpi 32), so the axes still fill the figure.

The IQ slices are not stored (8 and 80 MB): both this script and test/unit/render-matplotlib
generate them from the same integer hash and float64 formulas (see `signal` below), and the
manifest records the SHA-256 of the float32 bytes so the test can tell that it regenerated the
same samples. Every pixel matplotlib writes is one of jet's 256 colours (the colormap is applied
after resampling, alpha is 1), which the script checks; images are stored as palette PNGs with
that table, so they decode to exactly matplotlib's RGB and stay small.

Run with Debian's interpreter (python3-matplotlib, python3-scipy):
/usr/bin/python3 scripts/make-matplotlib-fixtures.py
"""
import hashlib
import io
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.signal import stft, windows  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'matplotlib')

# (name, figsize in inches, dpi) → width × height
SIZES = [('1920x1440', (6.4, 4.8), 300), ('640x480', (6.4, 4.8), 100), ('224x224', (7, 7), 32)]


def hash_unit(i):
    """murmur3's 32-bit finaliser of the index, as a float in [-0.5, 0.5) (exact in both languages)."""
    h = (i.astype(np.uint64) * 0x9E3779B1) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h.astype(np.float64) / 2**32 - 0.5


def frac(x):
    return x - np.floor(x)


def signal(samples, fs, seed):
    """Drone-like test signal: noise floor, a steady carrier, hopping bursts and a repeating chirp."""
    k = np.arange(samples, dtype=np.int64)
    t = k / fs
    base = np.int64(seed) * 4 * samples
    i = 0.05 * (hash_unit(base + 4 * k) + hash_unit(base + 4 * k + 1))
    q = 0.05 * (hash_unit(base + 4 * k + 2) + hash_unit(base + 4 * k + 3))
    # steady carrier at +0.21 fs, 20 dB under the bursts
    ph = frac(0.21 * k)
    i += 0.1 * np.cos(2 * np.pi * ph)
    q += 0.1 * np.sin(2 * np.pi * ph)
    # frequency-hopping bursts: one per 1 ms, on for 0.4 ms, at one of 11 channels
    slot = np.floor(t / 1e-3).astype(np.int64)
    on = (t - slot * 1e-3) < 0.4e-3
    f = ((slot * 7 + seed) % 11 - 5) * 0.07
    ph = frac(f * k)
    i += np.where(on, np.cos(2 * np.pi * ph), 0.0)
    q += np.where(on, np.sin(2 * np.pi * ph), 0.0)
    # a chirp from -0.45 fs to -0.05 fs every 5 ms, 10 dB under the bursts
    tc = t - np.floor(t / 5e-3) * 5e-3
    ph = frac(-0.45 * fs * tc + 0.5 * (0.4 * fs / 5e-3) * tc * tc)
    i += 0.3 * np.cos(2 * np.pi * ph)
    q += 0.3 * np.sin(2 * np.pi * ph)
    # On a 1/4096 grid, as from a 12-bit converter: the two languages' sin and cos may differ in
    # their last bit (float64), which rounding to float32 would show once in ~10^7 samples.
    iq = np.empty(2 * samples, dtype='<f4')
    iq[0::2] = np.round(i * 4096) / 4096
    iq[1::2] = np.round(q * 4096) / 4096
    return iq


def reference_image(iq, fs, n, figsize, dpi):
    """generate_images' drawing of one slice, with only the figure size and dpi as parameters."""
    data = iq[::2] + iq[1::2] * 1j
    f, t, Zxx = stft(data, fs, return_onesided=False, window=windows.hamming(n), nperseg=n)
    f = np.fft.fftshift(f)
    Zxx = np.fft.fftshift(Zxx, axes=0)
    aug = 10 * np.log10(np.abs(Zxx))
    extent = [t.min(), t.max(), f.min(), f.max()]
    plt.figure(figsize=figsize)
    plt.imshow(aug, extent=extent, aspect='auto', origin='lower', cmap='jet')
    plt.axis('off')
    plt.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=None, hspace=None)
    buffer = io.BytesIO()
    plt.savefig(buffer, format='png', dpi=dpi)
    plt.close()
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert('RGBA')), aug.shape


def palette_png(rgba, path):
    lut = matplotlib.colormaps['jet'](np.arange(256), bytes=True)[:, :3].astype(np.int64)
    assert (rgba[..., 3] == 255).all(), 'matplotlib left transparent pixels'
    key = (rgba[..., 0].astype(np.int64) << 16) | (rgba[..., 1].astype(np.int64) << 8) | rgba[..., 2]
    lut_key = (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]
    order = np.argsort(lut_key)
    pos = np.searchsorted(lut_key[order], key)
    pos = np.minimum(pos, 255)
    index = order[pos]
    assert (lut_key[index] == key).all(), 'a pixel is not one of jet\'s 256 colours'
    img = Image.fromarray(index.astype(np.uint8), mode='P')
    img.putpalette(lut.astype(np.uint8).flatten().tolist())
    img.save(path, optimize=True)


CASES = [
    # the measurement: 20 MS/s, 0.05 s, 512-point STFT (3 907 frames)
    {'name': 'a', 'sample_rate': 20e6, 'duration_time': 0.05, 'stft_point': 512, 'seed': 1},
    # the service's default slice: 100 MS/s, 0.1 s, 1024-point STFT (19 533 frames)
    {'name': 'b', 'sample_rate': 100e6, 'duration_time': 0.1, 'stft_point': 1024, 'seed': 2},
]

os.makedirs(OUT, exist_ok=True)
manifest = {'matplotlib': matplotlib.__version__, 'numpy': np.__version__, 'scipy': scipy.__version__,
            'cases': []}
for case in CASES:
    samples = int(case['sample_rate'] * case['duration_time'])
    iq = signal(samples, case['sample_rate'], case['seed'])
    entry = dict(case, samples=samples, iq_sha256=hashlib.sha256(iq.tobytes()).hexdigest(), images=[])
    for size, figsize, dpi in SIZES:
        rgba, shape = reference_image(iq, case['sample_rate'], case['stft_point'], figsize, dpi)
        assert f'{rgba.shape[1]}x{rgba.shape[0]}' == size, (rgba.shape, size)
        file = f"{case['name']}-{size}.png"
        palette_png(rgba, os.path.join(OUT, file))
        entry['images'].append({'file': file, 'width': rgba.shape[1], 'height': rgba.shape[0]})
        entry['freqs'], entry['frames'] = int(shape[0]), int(shape[1])
        print(file, shape, os.path.getsize(os.path.join(OUT, file)), 'bytes')
    manifest['cases'].append(entry)
with open(os.path.join(OUT, 'manifest.json'), 'w') as fh:
    json.dump(manifest, fh, indent=1)
    fh.write('\n')
