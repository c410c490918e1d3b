// Create a user and push "send welcome email" in the same transaction.
//   node signup.js ann@example.com            commits: the user and the job
//   node signup.js bob@example.com --abort    rolls back: neither exists
// The database comes from the usual PG* environment variables.
"use strict";

const { Client } = require("pg");
const pgtq = require("./pgtq");

async function main() {
  const [email, flag] = process.argv.slice(2);
  const client = new Client();
  await client.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query("INSERT INTO users (email) VALUES ($1) RETURNING id", [email]);
    const userId = Number(rows[0].id);
    const jobId = await pgtq.push(client, "emails", "send_welcome", [userId]);
    if (flag === "--abort") {
      await client.query("ROLLBACK");
      console.log("rolled back: no user, no job");
    } else {
      await client.query("COMMIT");
      console.log(`user ${userId} and job ${jobId} committed`);
    }
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  } finally {
    await client.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
