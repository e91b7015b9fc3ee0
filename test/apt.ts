import { spawnSync } from 'node:child_process';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Installs Debian packages with apt-get (running `apt-get update` once if the first try fails),
 * as the set-up does for torch. Only as root; returns whether it worked.
 */
export function aptInstall(...packages: string[]): boolean {
  if (!isRoot) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio: 'inherit', env })
      .status === 0;
  return install() || (spawnSync('apt-get', ['update'], { stdio: 'inherit', env }).status === 0 && install());
}
