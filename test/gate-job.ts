import { Type } from '@sinclair/typebox';
import type { ResourceClass } from '../src/domain/task.js';
import type { JobDefinition } from '../src/jobs/job.js';

/**
 * A controllable job kind for tests: each run waits until the test opens its gate (or the task is
 * aborted). Records starts and stops so tests can assert what ran, when and where.
 */
export class Gates {
  private readonly open = new Map<string, (v: 'ok' | 'fail') => void>();
  readonly started: { id: string; device: string; attempt: number }[] = [];
  readonly stopped: string[] = [];
  /** When set, an abort is acknowledged only after this many ms (simulates slow shutdown of work). */
  stopDelayMs = 0;

  release(id: string, how: 'ok' | 'fail' = 'ok'): boolean {
    const r = this.open.get(id);
    if (!r) return false;
    r(how);
    return true;
  }

  isRunning(id: string): boolean {
    return this.open.has(id);
  }

  job(kind: string, resourceClass: ResourceClass, route?: string): JobDefinition {
    return {
      kind,
      resourceClass,
      route,
      body: Type.Object({ label: Type.Optional(Type.String()) }),
      // Spreads its body on purpose: the service must hand it only the kind's own fields.
      validate: async (body) => ({ params: { ...body }, input_path: null, output_path: null }),
      run: (_params, ctx) =>
        new Promise((resolve, reject) => {
          const id = ctx.task.task_id;
          this.started.push({ id, device: ctx.device, attempt: ctx.task.attempts });
          ctx.log(`gate job ${id} waiting`, 'INFO', { stage: 'training', step: 1 });
          ctx.progress(50, 'half way');
          const finish = (how: 'ok' | 'fail') => {
            this.open.delete(id);
            if (how === 'ok') resolve({ message: 'gate opened', result: { device: ctx.device } });
            else reject(new Error('gate job failed on purpose'));
          };
          this.open.set(id, finish);
          ctx.signal.addEventListener('abort', () => {
            setTimeout(() => {
              this.open.delete(id);
              this.stopped.push(id);
              reject(ctx.signal.reason as Error);
            }, this.stopDelayMs);
          });
        }),
    };
  }
}
