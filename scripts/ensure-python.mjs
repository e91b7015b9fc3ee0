#!/usr/bin/env node
// Run by `npm ci` / `npm install` (the `prepare` script): makes sure the PyTorch runner's
// interpreter can import torch, torchvision and yaml. With Debian's /usr/bin/python3 and root,
// missing packages are installed with apt-get (python3-torch python3-torchvision python3-yaml);
// otherwise it prints what to do and leaves the install to you (never fails `npm ci`).
import { spawnSync } from 'node:child_process';

const python = process.env.RFUAV_PYTHON || '/usr/bin/python3';
const PACKAGES = ['python3-torch', 'python3-torchvision', 'python3-yaml'];

function hasModules() {
  const r = spawnSync(python, ['-c', 'import torch, torchvision, yaml'], { stdio: 'ignore' });
  return r.status === 0;
}

function run(cmd, args) {
  console.log(`[rfuav] ${cmd} ${args.join(' ')}`);
  return (
    spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
      .status === 0
  );
}

if (process.env.RFUAV_SKIP_PYTHON_SETUP === '1' || hasModules()) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (python === '/usr/bin/python3' && isRoot && hasApt) {
  console.log(`[rfuav] PyTorch is missing for ${python}: installing ${PACKAGES.join(' ')} from Debian`);
  const ok =
    run('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES]) ||
    (run('apt-get', ['update']) && run('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES]));
  if (ok && hasModules()) process.exit(0);
  console.warn('[rfuav] could not install PyTorch; training, evaluation and their tests need it');
} else {
  console.warn(
    `[rfuav] ${python} cannot import torch/torchvision/yaml. Training and evaluation need them: ` +
      (python === '/usr/bin/python3'
        ? `run (as root) apt-get install -y ${PACKAGES.join(' ')}`
        : 'install torch, torchvision and pyyaml into that interpreter') +
      ', or set RFUAV_PYTHON to an interpreter that has them.',
  );
}
