"""pgtq end to end: push jobs (one inside a business transaction, one for
later, one that fails once), run a real worker and scheduler, and report
what happened to every job.

    PGTQ_DSN="dbname=app" python examples/demo.py     (`make demo` sets it up)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

import pgtq
from pgtq.migrate import upgrade

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from demo_app import charge_card, q, resize, send_reminder, send_welcome_email  # noqa: E402

FINISHED = {"done", "failed", "cancelled"}


def start(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(HERE))
    return subprocess.Popen([sys.executable, "-m", "pgtq.cli", *args], cwd=HERE, env=env)


def fate(job: pgtq.JobInfo) -> str:
    waited = (job.run_at - job.created_at).total_seconds()
    parts = []
    if waited >= 1 and job.attempt == 1:
        parts.append(f"scheduled {waited:.0f} s ahead, then")
    if job.attempt > 1:
        first_error = (job.last_error or "").splitlines()[0]
        parts.append(f"retried ({first_error}), then")
    parts.append(f"{job.state} on attempt {job.attempt}")
    if job.result is not None:
        parts.append(f"-> {job.result!r}")
    return " ".join(parts)


def main() -> int:
    dsn = os.environ["PGTQ_DSN"]
    migration = upgrade(dsn)
    print(f"schema: pgtq {migration.after} ({migration.route} route)")

    with psycopg.connect(dsn) as business:
        business.execute("CREATE TABLE IF NOT EXISTS demo_users (name text)")
        business.execute("INSERT INTO demo_users VALUES ('ann')")
        welcome_ann = send_welcome_email.options(conn=business).push("ann")
        business.commit()
    with psycopg.connect(dsn) as business:
        send_welcome_email.options(conn=business).push("ghost")
        business.rollback()
    print(f"pushed job {welcome_ann} in a committed transaction; a rolled-back push left no job")

    jobs = {
        "welcome email (transactional push)": welcome_ann,
        "resize image": resize.push("cat.png", width=320),
        "charge card (fails once)": charge_card.push(1042, 1999),
        "reminder (scheduled +3 s)": send_reminder.options(delay=3).push("ann"),
    }
    started_at = time.monotonic()
    worker = start("--log-level", "WARNING", "worker", "demo_app:q", "--poll-interval", "1")
    scheduler = start("--log-level", "WARNING", "scheduler", "demo", "--interval", "0.5")
    print("worker and scheduler started; waiting for the jobs ...")

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(q.job(job_id).state in FINISHED for job_id in jobs.values()):  # type: ignore[union-attr]
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started_at

    for process in (worker, scheduler):
        process.send_signal(signal.SIGTERM)
    codes = [process.wait(timeout=30) for process in (worker, scheduler)]
    print(f"worker and scheduler stopped cleanly (exit codes {codes[0]}, {codes[1]}) after {elapsed:.1f} s\n")

    print("what happened to each job:")
    all_finished = True
    for label, job_id in jobs.items():
        job = q.job(job_id)
        assert job is not None
        all_finished &= job.state == "done"
        print(f"  #{job_id:<5} {label:<36} {fate(job)}")

    print("\nqueue statistics (pgtq.queue_stats):")
    for stat in q.stats():
        print(f"  {stat.queue:<8} {stat.state:<10} {stat.jobs:>5} jobs, oldest {stat.oldest_age}")
    q.close()
    print("\nwhat needs a look (pgtq.health(), as `pgtq doctor` shows it):")
    with pgtq.Database(dsn) as database:
        for check in database.health() or []:
            print(f"  {check.name:<10} {check.status:<8} {check.detail}")
    if not all_finished or codes != [0, 0]:
        print("\ndemo FAILED: not every job finished, or a process did not stop cleanly", file=sys.stderr)
        return 1
    print("\ndemo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
