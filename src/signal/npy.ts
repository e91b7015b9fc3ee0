/**
 * NumPy .npy (format 1.0) for a C-ordered float32 matrix, so researchers can `numpy.load` the dB
 * values behind every image. The header is padded to a multiple of 64 bytes, as numpy writes it.
 */
export function npyFloat32(data: Float32Array, rows: number, cols: number): Buffer {
  if (data.length !== rows * cols)
    throw new RangeError(`npy: ${data.length} values for a ${rows}×${cols} matrix`);
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const prefix = 10; // magic (6) + version (2) + header length (2)
  const total = Math.ceil((prefix + header.length + 1) / 64) * 64;
  header = header.padEnd(total - prefix - 1, ' ') + '\n';
  const out = Buffer.alloc(total + data.byteLength);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, prefix, 'latin1');
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) bytes.copy(out, total);
  else for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i] as number, total + 4 * i);
  return out;
}
