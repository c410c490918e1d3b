// A minimal pgtq worker in Node.js: claim jobs of queue "emails", run the
// handler of each task, complete or fail it. Between claims it does the
// housekeeping of a pgtq worker: it ticks the queue every second (retries
// and scheduled jobs come due, lapsed leases are rescued) and keeps its
// registration fresh (pgtq.workers, pgtq doctor).
//   node worker.js               runs until SIGINT/SIGTERM, polling every second
//   node worker.js --until-empty stops when no job is ready
// The work and pgtq.complete commit in one transaction where the handler
// writes to the same database: the user is marked welcomed exactly when
// the job is done.
"use strict";

const os = require("os");
const { Client } = require("pg");
const pgtq = require("./pgtq");

const handlers = {
  async send_welcome(client, userId) {
    // Sending the e-mail would go here; this example records it.
    await client.query("UPDATE users SET welcomed_at = now() WHERE id = $1", [userId]);
    return { welcomed: userId };
  },
};

async function runOne(client, job) {
  const handler = handlers[job.task];
  if (handler === undefined) {
    const state = await pgtq.fail(client, job, `no handler for task ${job.task}`);
    console.log(`job ${job.id} failed: no handler for ${job.task} (now ${state})`);
    return;
  }
  try {
    await client.query("BEGIN");
    const result = await handler(client, ...job.args);
    const done = await pgtq.complete(client, job, result);
    await client.query("COMMIT");
    console.log(`job ${job.id} done (completed: ${done})`);
  } catch (error) {
    await client.query("ROLLBACK");
    const state = await pgtq.fail(client, job, error.stack ?? error);
    console.log(`job ${job.id} failed: ${error.message} (now ${state})`);
  }
}

const QUEUE = "emails";
const TICK_EVERY_MS = 1000;
const REGISTER_EVERY_MS = 10000;

async function main() {
  const untilEmpty = process.argv.includes("--until-empty");
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => { stopping = true; });
  const client = new Client();
  await client.connect();
  const worker = `node-${process.pid}`;
  let tickedAt = 0;
  let registeredAt = 0;
  try {
    while (!stopping) {
      const now = Date.now();
      if (now - registeredAt >= REGISTER_EVERY_MS) {
        await pgtq.registerWorker(client, worker, [QUEUE], os.hostname(), process.pid);
        if (registeredAt === 0) console.log(`registered as ${worker}`);
        registeredAt = now;
      }
      if (now - tickedAt >= TICK_EVERY_MS) {
        const moved = await pgtq.tick(client, QUEUE);
        if (moved > 0) console.log(`tick moved ${moved} job(s)`);
        tickedAt = now;
      }
      const jobs = await pgtq.pop(client, QUEUE, worker, 10);
      for (const job of jobs) await runOne(client, job);
      if (jobs.length === 0) {
        if (untilEmpty) break;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    console.log("no job ready");
  } finally {
    await pgtq.unregisterWorker(client, worker)
      .catch((error) => console.error(`could not unregister ${worker}: ${error.message}`));
    await client.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
