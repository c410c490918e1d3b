// A minimal pgtq worker in Node.js: claim jobs of queue "emails", run the
// handler of each task, complete or fail it.
//   node worker.js               runs until SIGINT/SIGTERM, polling every second
//   node worker.js --until-empty stops when no job is ready
// The work and pgtq.complete commit in one transaction where the handler
// writes to the same database: the user is marked welcomed exactly when
// the job is done.
"use strict";

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

async function main() {
  const untilEmpty = process.argv.includes("--until-empty");
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => { stopping = true; });
  const client = new Client();
  await client.connect();
  const worker = `node-${process.pid}`;
  try {
    while (!stopping) {
      const jobs = await pgtq.pop(client, "emails", worker, 10);
      for (const job of jobs) await runOne(client, job);
      if (jobs.length === 0) {
        if (untilEmpty) break;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    console.log("no job ready");
  } finally {
    await client.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
