import { apiClient, CLIENT_OPTIONS, taskPath, type Command } from '../command.js';

/** `rfuav cancel <task_id>`: a queued task leaves the queue, a running one is stopped. */
export const cancelCommand: Command = {
  name: 'cancel',
  summary: 'Cancel a queued or running task',
  group: 'tasks',
  positionals: { usage: '<task_id>', min: 1, max: 1 },
  options: [CLIENT_OPTIONS],
  async run(args) {
    const id = args.positionals[0] as string;
    const res = await apiClient(args).request<{ message: string }>('POST', taskPath(id, '/cancel'));
    process.stdout.write(`${res.message}\n`);
    return 0;
  },
};
