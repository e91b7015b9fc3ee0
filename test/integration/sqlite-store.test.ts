import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tmpDir } from '../helpers.js';
import { storeConformance } from '../store-conformance.js';

const dir = tmpDir();
let n = 0;
const files = new WeakMap<object, string>();

storeConformance(
  'SQLite (file, WAL)',
  async () => {
    const file = path.join(dir, `store-${++n}.sqlite`);
    const s = new SqliteStore({ file });
    files.set(s, file);
    return s;
  },
  async (s) => {
    const file = files.get(s) as string;
    await s.close();
    return new SqliteStore({ file });
  },
);
