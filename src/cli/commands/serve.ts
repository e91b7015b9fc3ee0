import { loadConfig } from '../../config.js';
import { createService } from '../../main.js';
import { redactedUrl } from '../../store/postgres/pg-store.js';
import type { Command } from '../command.js';

/** `rfuav serve`: the service in this process, until SIGTERM or SIGINT. */
export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the service (HTTP API, scheduler, workers) in the foreground',
  group: 'server',
  options: [
    {
      title: 'Options',
      options: [
        { name: 'host', type: 'string', placeholder: 'HOST', description: '$RFUAV_HOST, else 127.0.0.1' },
        {
          name: 'port',
          type: 'integer',
          placeholder: 'N',
          description: '$RFUAV_PORT, else 8000; 0: any free port',
        },
        {
          name: 'home',
          type: 'string',
          placeholder: 'DIR',
          description: 'Database and state ($RFUAV_HOME, else .rfuav)',
        },
        {
          name: 'data-root',
          type: 'string',
          placeholder: 'DIR',
          description: 'Every request path is read inside it ($RFUAV_DATA_ROOT, else data)',
        },
        {
          name: 'database-url',
          type: 'string',
          placeholder: 'URL',
          description: 'PostgreSQL instead of SQLite under the home ($DATABASE_URL)',
        },
        {
          name: 'node-name',
          type: 'string',
          placeholder: 'NAME',
          description: 'This node in a PostgreSQL cluster ($RFUAV_NODE_NAME, else the host name)',
        },
        {
          name: 'insecure',
          type: 'boolean',
          description: 'Listen beyond loopback without API tokens ($RFUAV_INSECURE)',
        },
      ],
    },
  ],
  notes: ['Environment: RFUAV_API_TOKENS and the other RFUAV_* settings the README lists.'],
  async run(args) {
    const config = loadConfig(process.env, {
      // Only what was given: the environment fills the rest.
      host: args.string('host'),
      port: args.number('port'),
      home: args.string('home'),
      dataRoot: args.string('data-root'),
      insecure: args.has('insecure') ? args.boolean('insecure') : undefined,
      databaseUrl: args.string('database-url'),
      nodeName: args.string('node-name'),
    });
    const svc = await createService({ config });
    try {
      const address = await svc.listen();
      process.stdout.write(
        `RFUAV Model Service listening on ${address} (${config.databaseUrl ? `node ${config.node.name}, store ${redactedUrl(config.databaseUrl)}` : `home ${config.home}`}, data root ${config.dataRoot})\n`,
      );
    } catch (err) {
      await svc.close();
      throw err;
    }
    // OS signals are handled here, in the entry point only; components expose close().
    let signals = 0;
    const onSignal = (sig: string) => {
      if (++signals > 1) {
        svc.logger.warn(`${sig} again: exiting now`);
        process.exit(1);
      }
      svc.logger.info(`${sig}: shutting down gracefully`);
      svc.close().then(
        () => process.exit(0),
        (err: unknown) => {
          svc.logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    // A stray rejection is a bug to log, not a reason to drop every client and running task.
    process.on('unhandledRejection', (err) => svc.logger.error({ err }, 'unhandled promise rejection'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    return new Promise<number>(() => undefined);
  },
};
