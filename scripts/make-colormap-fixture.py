#!/usr/bin/python3
"""Dumps matplotlib's jet colormap as bytes (test/fixtures/colormap-jet.json), once; committed.

Run with Debian's interpreter (python3-matplotlib): /usr/bin/python3 scripts/make-colormap-fixture.py
"""
import json
import os

import matplotlib
import numpy as np

cm = matplotlib.colormaps['jet']
lut = cm(np.arange(256), bytes=True)[:, :3]
values = np.linspace(0, 1, 1001)
mapped = cm(values, bytes=True)[:, :3]
out = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'colormap-jet.json')
with open(out, 'w') as fh:
    json.dump({
        'matplotlib': matplotlib.__version__,
        'lut': lut.astype(int).tolist(),
        'values': values.tolist(),
        'mapped': mapped.astype(int).tolist(),
    }, fh)
print('wrote', out)
