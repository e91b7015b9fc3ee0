import { apiClient, CLIENT_OPTIONS, taskPath, type Command } from '../command.js';
import { followTask } from '../follow.js';
import { formatEntry, type LogLine } from '../format.js';

/** `rfuav logs [-f] <task_id>`: a task's log so far, or (-f) followed live until the task ends. */
export const logsCommand: Command = {
  name: 'logs',
  summary: "Print a task's log; -f follows it live (with progress) until the task ends",
  group: 'tasks',
  positionals: { usage: '<task_id>', min: 1, max: 1 },
  options: [
    {
      title: 'Options',
      options: [
        {
          name: 'follow',
          short: 'f',
          type: 'boolean',
          description: 'Follow until the task ends; exit 0 only if it completed',
        },
      ],
    },
    CLIENT_OPTIONS,
  ],
  async run(args) {
    const id = args.positionals[0] as string;
    const api = apiClient(args);
    if (args.boolean('follow')) {
      const final = await followTask(api, id);
      return final.status === 'completed' ? 0 : 1;
    }
    for await (const ev of api.events(taskPath(id, '/logs?follow=false'))) {
      if (ev.event !== undefined) continue; // progress: the history's log lines are what is asked for
      const data = JSON.parse(ev.data) as LogLine & { status?: string };
      if (ev.id === undefined && data.status) process.stdout.write(`Task ${id} ${data.status}\n`);
      else process.stdout.write(`${formatEntry(data)}\n`);
    }
    return 0;
  },
};
