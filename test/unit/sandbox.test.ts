import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AppError } from '../../src/domain/errors.js';
import { readSignalFile, SIGNAL_FILE } from '../../src/signal/params.js';
import { classFolders } from '../../src/util/files.js';
import { PathSandbox } from '../../src/util/sandbox.js';
import { tmpDir } from '../helpers.js';

function rejects(fn: () => unknown, re: RegExp) {
  assert.throws(
    fn,
    (err: unknown) => err instanceof AppError && err.statusCode === 400 && re.test(err.message),
  );
}

describe('path sandbox', () => {
  const dir = tmpDir();
  const root = path.join(dir, 'root');
  const box = new PathSandbox(root);
  fs.mkdirSync(path.join(root, 'in', 'deep'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'outside'));
  fs.symlinkSync(path.join(dir, 'outside'), path.join(root, 'escape'));
  fs.symlinkSync(path.join(root, 'in'), path.join(root, 'alias'));
  fs.symlinkSync(path.join(dir, 'nowhere'), path.join(root, 'dangling-out'));
  fs.symlinkSync(path.join(root, 'later'), path.join(root, 'dangling-in'));

  it('resolves relative paths inside the root, existing or not', () => {
    assert.equal(box.resolve('in/deep', 'p'), path.join(fs.realpathSync(root), 'in', 'deep'));
    assert.equal(
      box.resolve('new/folder/x.png', 'p'),
      path.join(fs.realpathSync(root), 'new', 'folder', 'x.png'),
    );
    assert.equal(box.resolve('./in', 'p'), path.join(fs.realpathSync(root), 'in'));
  });

  it('accepts absolute paths only inside the root', () => {
    assert.equal(box.resolve(path.join(root, 'in'), 'p'), path.join(fs.realpathSync(root), 'in'));
    rejects(
      () => box.resolve('/etc/passwd', 'input_path'),
      /input_path: '\/etc\/passwd' is outside the data root/,
    );
    rejects(() => box.resolve(`${root}-sibling/x`, 'p'), /outside the data root/);
  });

  it("rejects '..' anywhere, NUL bytes and empty paths", () => {
    rejects(() => box.resolve('../x', 'save_path'), /save_path: '\.\.' is not allowed/);
    rejects(() => box.resolve('in/../../x', 'p'), /'\.\.' is not allowed/);
    rejects(() => box.resolve('in\\..\\x', 'p'), /'\.\.' is not allowed/);
    rejects(() => box.resolve('in/a\0b', 'p'), /NUL/);
    rejects(() => box.resolve('  ', 'p'), /required/);
  });

  it('follows symlinks inside the root and refuses those that lead out', () => {
    assert.equal(box.resolve('alias/deep', 'p'), path.join(fs.realpathSync(root), 'in', 'deep'));
    rejects(() => box.resolve('escape', 'p'), /symbolic link/);
    rejects(() => box.resolve('escape/new-file', 'p'), /symbolic link/);
    rejects(() => box.resolve('dangling-out/x', 'p'), /symbolic link that points nowhere/);
    rejects(() => box.resolve('dangling-in', 'p'), /symbolic link that points nowhere/);
  });

  it('shows paths relative to the root', () => {
    assert.equal(box.display(box.resolve('in/deep', 'p')), path.join('in', 'deep'));
    assert.equal(box.display(box.resolve('.', 'p')), '.');
  });

  it('takes the root out of messages, and nothing else', () => {
    const err = `EEXIST: file already exists, mkdir '${root}/out/left'`;
    assert.equal(box.scrub(err), "EEXIST: file already exists, mkdir 'out/left'");
    assert.equal(box.scrub(`open ${root}: denied`), 'open .: denied');
    assert.equal(box.scrub(`'${root}'`), "'.'");
    const sibling = `${root}2/x and ${dir}/outside`;
    assert.equal(box.scrub(sibling), sibling, 'a sibling folder with the same prefix is left alone');
  });

  it('keeps a file inside its output folder', () => {
    const out = box.resolve('in', 'p');
    assert.equal(box.within(out, path.join(out, 'deep/x.png'), 'o'), path.join(root, 'in/deep/x.png'));
    assert.throws(
      () => box.within(box.resolve('in/deep', 'p'), path.join(root, 'in/deep/../x'), 'o'),
      /o: 'in\/x' leads out of o/,
    );
    fs.symlinkSync(path.join(root, 'elsewhere'), path.join(root, 'in/deep/link'));
    assert.throws(
      () => box.within(box.resolve('in/deep', 'p'), path.join(root, 'in/deep/link/x.png'), 'o'),
      (e: AppError) =>
        e.code === 'bad_path' &&
        /o: 'in\/deep\/link\/x\.png' goes through a symbolic link that points nowhere/.test(e.message),
    );
    fs.mkdirSync(path.join(root, 'elsewhere'));
    assert.throws(
      () => box.within(box.resolve('in/deep', 'p'), path.join(root, 'in/deep/link/x.png'), 'o'),
      /o: 'in\/deep\/link\/x\.png' leads out of o through a symbolic link/,
    );
    assert.throws(() => box.within(out, path.join(root, 'escape/x.png'), 'o'), /leads outside the data root/);
  });
});

describe('submission checks read the file system once', () => {
  const dir = tmpDir();
  const root = path.join(dir, 'root');
  const box = new PathSandbox(root);
  fs.mkdirSync(path.join(root, 'ds', 'a'), { recursive: true });
  fs.mkdirSync(path.join(root, 'ds', 'b'));

  it('a cached folder listing follows the folder: an added, removed or renamed class is seen', async () => {
    const ds = path.join(fs.realpathSync(root), 'ds');
    assert.deepEqual(await classFolders(ds), ['a', 'b']);
    fs.mkdirSync(path.join(ds, 'c'));
    assert.deepEqual(await classFolders(ds), ['a', 'b', 'c']);
    fs.renameSync(path.join(ds, 'a'), path.join(ds, 'z'));
    fs.rmdirSync(path.join(ds, 'b'));
    fs.writeFileSync(path.join(ds, 'b'), 'now a file');
    assert.deepEqual(await classFolders(ds), ['c', 'z']);
    // A listing of a folder replaced by another (new inode) is not reused either.
    fs.renameSync(ds, path.join(root, 'old'));
    fs.mkdirSync(ds);
    fs.mkdirSync(path.join(ds, 'fresh'));
    assert.deepEqual(await classFolders(ds), ['fresh']);
  });

  it('a signal file added beside a dataset is found at the next submission', async () => {
    const ds = path.join(fs.realpathSync(root), 'ds');
    assert.equal(await readSignalFile(ds), null);
    const params = {
      sample_rate: 1e8,
      stft_point: 1024,
      duration_time: 0.1,
      ratio: 1,
      dtype: 'float32',
      width: 96,
      height: 96,
    };
    fs.writeFileSync(path.join(ds, SIGNAL_FILE), JSON.stringify(params));
    assert.equal((await readSignalFile(ds))?.stft_point, 1024);
  });

  it("a one-check view resolves each path once, gives the sandbox's answers, and keeps no errors", (t) => {
    const lstat = t.mock.method(fs, 'lstatSync');
    const stat = t.mock.method(fs, 'statSync');
    const view = box.forOneCheck();
    const ds = view.resolve('ds', 'train_path');
    assert.equal(ds, box.resolve('ds', 'x'));
    lstat.mock.resetCalls();
    assert.equal(view.resolve('ds', 'val_path'), ds);
    const out = view.resolve('new/out', 'save_path');
    assert.equal(out, box.resolve('new/out', 'x'));
    assert.equal(lstat.mock.callCount(), 2, 'one lstat for new/out (new is missing), none for ds again');
    stat.mock.resetCalls();
    assert.ok(view.stat(ds)?.isDirectory());
    assert.equal(view.stat(out), null);
    assert.equal(stat.mock.callCount(), 0, 'what the walk saw answers stat');
    rejects(() => view.resolve('../up', 'p'), /'\.\.' is not allowed/);
    rejects(() => view.resolve('../up', 'p'), /'\.\.' is not allowed/);
  });

  it('a one-check view never takes what stat saw through a link for a folder to walk into', () => {
    fs.mkdirSync(path.join(dir, 'elsewhere'));
    fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(root, 'escape'));
    const view = box.forOneCheck();
    assert.ok(view.stat(path.join(box.realRoot, 'escape'))?.isDirectory(), 'stat follows the link out');
    rejects(() => view.resolve('escape/x', 'p'), /outside the data root through a symbolic link/);
  });
});
