import { hashToken, newToken } from '../../util/users.js';
import type { Command } from '../command.js';

/**
 * `rfuav hash-token [TOKEN]`: a users-file entry's `token_sha256` for a token (a new random one
 * when none is given), so the users file never holds a token in clear. Local: no server.
 */
export const hashTokenCommand: Command = {
  name: 'hash-token',
  summary: 'Make a salted token hash for RFUAV_USERS_FILE (and a new token if none is given)',
  group: 'local',
  positionals: { usage: '[TOKEN]', min: 0, max: 1 },
  options: [],
  notes: ['Give the token to its user; put only the token_sha256 line in the users file.'],
  async run(args) {
    const given = args.positionals[0];
    const token = given ?? newToken();
    if (!given) process.stdout.write(`token: ${token}\n`);
    process.stdout.write(`token_sha256: "${hashToken(token)}"\n`);
    return 0;
  },
};
