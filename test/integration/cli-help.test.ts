/** `rfuav help` and `rfuav <command> --help` from dist/, printed from the command table. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { ensureBuilt, rfuav } from '../process.js';

describe('rfuav --help', () => {
  before(ensureBuilt);

  it("lists a submitting command's options as its request schema declares them", async () => {
    const r = await rfuav(['split', '--help']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Usage: rfuav split --input-path PATH --output-path PATH \[options\]$/m);
    assert.match(r.out, /^ {2}--train-ratio X +\[0\.1 to 0\.9; default 0\.8\]$/m);
    assert.match(
      r.out,
      /^ {2}--val-ratio X +When given, a third test split gets the rest \[0\.05 to 0\.5\]$/m,
    );
    assert.match(r.out, /^ {2}--input-path, --input PATH +Folder with one sub-folder of images per class/m);
    assert.match(r.out, /^ {2}--priority N +1 is most urgent \[1 to 10\]$/m);
    assert.match(r.out, /^ {2}--\[no-\]follow /m);

    const train = await rfuav(['help', 'train']);
    assert.equal(train.code, 0, train.err);
    assert.match(train.out, /^ {2}--learning-rate, --lr X +\[>0, <=10; default 0\.0001\]$/m);
    assert.match(train.out, /^ {2}--\[no-\]pretrained +ImageNet weights/m);
    assert.match(train.out, /^ {2}--device TEXT +cpu, cuda, cuda:N or auto$/m);
  });

  it('lists every command, and exits 2 on no command or an unknown one', async () => {
    const all = await rfuav(['help']);
    assert.equal(all.code, 0);
    for (const name of [
      'serve',
      'tasks',
      'logs',
      'cancel',
      'predict',
      'split',
      'train',
      'synth',
      'noise',
      'hash-token',
    ])
      assert.match(all.out, new RegExp(`^ {2}${name} +\\S`, 'm'));
    assert.equal((await rfuav([])).code, 2);
    const unknown = await rfuav(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /unknown command 'frobnicate'/);
    const bad = await rfuav(['train', '--epochs', 'many']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--epochs must be an integer \(got 'many'\)/);
  });

  it('hash-token prints a users-file line the service accepts for that token, never the token itself', async () => {
    const r = await rfuav(['hash-token', 'secret-token-123']);
    assert.equal(r.code, 0, r.err);
    const line = /^token_sha256: "(sha256:[0-9a-f]+:[0-9a-f]{64})"$/m.exec(r.out);
    assert.ok(line, r.out);
    assert.ok(!r.out.includes('secret-token-123'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rfuav-hash-'));
    fs.writeFileSync(
      path.join(dir, 'users.yaml'),
      `users:\n  - name: erin\n    token_sha256: "${line[1]}"\n`,
    );
    const users = loadConfig({ RFUAV_USERS_FILE: 'users.yaml' }, {}, dir).users;
    assert.equal(users.authenticate('secret-token-123')?.name, 'erin');
    const fresh = await rfuav(['hash-token']);
    assert.match(fresh.out, /^token: \S{40,}$/m, 'a new random token when none is given');
  });
});
