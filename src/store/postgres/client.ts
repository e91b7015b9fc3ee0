import type pg from 'pg';

/**
 * Runs `fn` on a connection of its own from `pool`. While a client is checked out the pool stops
 * listening for its errors, and an 'error' between two queries (the server restarting, say) with
 * no listener ends the process. So one is attached for the loan, and a client that failed goes
 * back to the pool as broken, to be closed rather than lent again.
 */
export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failed: Error | undefined;
  const onError = (err: Error): void => {
    failed = err;
  };
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (err) {
    failed ??= err instanceof Error && isConnectionGone(err) ? err : undefined;
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(failed);
  }
}

/** `fn` inside BEGIN … COMMIT on a connection of its own; any throw rolls it back. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    await client.query('BEGIN');
    try {
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}

/** A connection that can no longer be used (as opposed to a statement that failed on it). */
function isConnectionGone(err: Error): boolean {
  return /Connection terminated|ECONNRESET|EPIPE|terminating connection/i.test(err.message);
}
