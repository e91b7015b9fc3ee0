#!/usr/bin/python3
"""Generates the STFT reference vectors in test/fixtures/stft with scipy (run once; committed).

Each case: complex64 IQ input and the expected fftshift-ed STFT of
scipy.signal.stft(x, fs, window=hamming(N), nperseg=N, return_onesided=False), stored as
little-endian float32 (real and imaginary parts, frequency x time) in base64 inside a JSON file.
Run with Debian's interpreter, which has scipy: /usr/bin/python3 scripts/make-stft-fixtures.py
"""
import base64
import json
import os

import numpy as np
from scipy.signal import stft
from scipy.signal.windows import hamming

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'stft')


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype='<f4').tobytes()).decode()


def case(name, x, n, fs=1e6):
    x = x.astype(np.complex64)
    f, t, z = stft(x, fs, window=hamming(n), nperseg=n, return_onesided=False)
    z = np.fft.fftshift(z, axes=0)
    iq = np.empty(2 * len(x), dtype='<f4')
    iq[0::2] = x.real
    iq[1::2] = x.imag
    doc = {
        'name': name,
        'n': n,
        'samples': len(x),
        'freqs': int(z.shape[0]),
        'frames': int(z.shape[1]),
        'scipy': __import__('scipy').__version__,
        'iq': b64(iq),
        're': b64(z.real),
        'im': b64(z.imag),
    }
    with open(os.path.join(OUT, f'{name}.json'), 'w') as fh:
        json.dump(doc, fh)
    print(name, z.shape)


rng = np.random.default_rng(7)
os.makedirs(OUT, exist_ok=True)
# white complex noise, length not a multiple of the hop (exercises padded=True)
case('noise-256', rng.standard_normal(5003) + 1j * rng.standard_normal(5003), 256)
# a tone plus a linear chirp, small transform
k = np.arange(1500)
case('chirp-64', np.exp(2j * np.pi * (0.1 * k + 0.00008 * k * k)) + 0.3 * np.exp(-2j * np.pi * 0.3 * k), 64)
# a burst inside silence, the transform size the service uses by default
x = np.zeros(6000, dtype=np.complex128)
x[2000:3500] = np.exp(2j * np.pi * 0.05 * np.arange(1500)) * 3.0
case('burst-1024', x, 1024)
# exactly one window long (scipy refuses inputs shorter than the window; so does the service)
case('exact-128', rng.standard_normal(128) + 1j * rng.standard_normal(128), 128)
