// pgtq's SQL API from Node.js: each function is one SQL call, on a client
// (or a pool) of the `pg` package. Pass the client of an open transaction
// to push inside it: the job then exists only if that transaction commits.
"use strict";

async function push(client, queue, task, args = [], kwargs = {}, options = {}) {
  const { rows } = await client.query(
    `SELECT pgtq.push($1, $2, $3::jsonb, $4::jsonb,
                      run_at => $5, priority => $6, job_key => $7) AS id`,
    [queue, task, JSON.stringify(args), JSON.stringify(kwargs),
     options.runAt ?? null, options.priority ?? 0, options.jobKey ?? null],
  );
  return Number(rows[0].id);
}

// Claims up to n ready jobs; each comes with the lease that completes it.
async function pop(client, queue, worker, n = 1, leaseSeconds = 60) {
  const { rows } = await client.query(
    `SELECT id, task, args, kwargs, attempt, max_attempts, lease
     FROM pgtq.pop($1, $2, n => $3, lease => make_interval(secs => $4))`,
    [queue, worker, n, leaseSeconds],
  );
  return rows.map((row) => ({ ...row, id: Number(row.id) }));
}

// True when done; false when the lease was no longer this worker's.
async function complete(client, job, result = null) {
  const { rows } = await client.query(
    "SELECT pgtq.complete($1, $2::uuid, $3::jsonb) AS done",
    [job.id, job.lease, result === null ? null : JSON.stringify(result)],
  );
  return rows[0].done;
}

// The job's new state (scheduled or ready: retried; failed: no attempt
// left), or null when the lease was no longer this worker's.
async function fail(client, job, error) {
  const { rows } = await client.query(
    "SELECT pgtq.fail($1, $2::uuid, $3) AS state",
    [job.id, job.lease, String(error)],
  );
  return rows[0].state;
}

// Records the worker as alive, serving `queues` (pgtq.workers, the
// dashboard, pgtq doctor). Call it at start and then well within the
// worker timeout (1 minute by default); unregister at a clean stop.
async function registerWorker(client, worker, queues, host, pid) {
  await client.query("SELECT pgtq.register_worker($1, $2, $3, $4::text[])", [worker, host, pid, queues]);
}

async function unregisterWorker(client, worker) {
  await client.query("SELECT pgtq.unregister_worker($1)", [worker]);
}

// Moves the queue's due jobs: scheduled jobs (retries after their backoff
// too) whose time came become ready, and jobs whose lease ran out (their
// worker died) are retried. Something must tick every queue: a worker
// loop, `pgtq scheduler`, or pg_cron (`pgtq cron install`).
async function tick(client, queue) {
  const { rows } = await client.query("SELECT pgtq.tick($1) AS moved", [queue]);
  return rows[0].moved;
}

module.exports = { push, pop, complete, fail, registerWorker, unregisterWorker, tick };
