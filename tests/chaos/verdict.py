"""The chaos suite's pass rule, as a pure function of what the run recorded.

``run.py`` keeps its own books (every kill with the victim's pid and time,
every PostgreSQL restart with the postmaster's pid before and after, worker
processes that died unasked or did not stop cleanly), and the handler writes
one ledger row per run of a job (token, job id, attempt, the worker's OS pid,
when the attempt was claimed, when it ran). :func:`judge` checks them
against the queue's final state; it needs no database, so its rule is tested
on its own (``tests/py/test_chaos.py``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

# A live, connected worker writes a finished run's outcome within milliseconds
# (measured here: at most 40 ms, about 0.5 s while reconnecting after a
# restart). A duplicate is cut off only by a kill or an outage that came
# within this long after its run; the margin is for a busy 2-core machine.
CUT_OFF_WITHIN = 1.0

RULE = (
    "the producer pushed every job without an error, and every job is in the queue exactly once and "
    "done before the deadline; it ran, and the run that completed it is recorded; no claim ran twice; "
    "every other run (a duplicate) was cut off: its own worker was SIGKILLed, or PostgreSQL (or "
    "PgBouncer) stopped, while the worker held the job under that claim, at most "
    f"{CUT_OFF_WITHIN:g} s after the run; at least the planned kills (each found its worker alive, "
    "and at least one found it holding jobs) and restarts (each gave a new postmaster, or "
    "PgBouncer, pid) happened; no worker died unasked once connected, and every worker and the "
    "scheduler stopped cleanly (exit 0) at the end; with a max_running limit, no sample of the queue's "
    "running jobs (live leases) saw more than the limit; with lock keys, no sample saw two of them "
    "hold one key"
)

EXAMPLES = 5  # offending jobs named per failure


@dataclass(frozen=True)
class Kill:
    """One SIGKILL sent by the run to a worker process."""

    pid: int
    at: float  # epoch seconds, just before the worker was frozen (SIGSTOP) and killed
    held: frozenset[int] | None  # ids of the running jobs it held (None: the database was away)
    exit_code: int | None  # -9 when the signal found the process alive


@dataclass(frozen=True)
class Restart:
    """One outage that cut every worker off: PostgreSQL stopped at once
    (``what="postgres"``) or PgBouncer stopped (``"pgbouncer"``), then started."""

    what: str
    down_at: float
    up_at: float
    old_pid: int | None  # the postmaster's or the bouncer's
    new_pid: int | None
    held: frozenset[tuple[int, int]] | None  # (worker pid, job id) running at the stop (None: unknown)


@dataclass(frozen=True)
class Run:
    """One ledger row: a handler call for one claim of a job."""

    token: str
    job_id: int
    attempt: int
    pid: int  # the worker's OS pid (os.getpid() in the handler)
    claimed_at: float  # when the attempt was claimed (its lease expiry minus the lease)
    at: float  # when the handler wrote the row


@dataclass(frozen=True)
class Job:
    """A job of the chaos queue as ``pgtq.jobs`` shows it at the end."""

    token: str
    id: int
    state: str
    attempt: int


@dataclass(frozen=True)
class Plan:
    """What the run set out to do."""

    jobs: int
    kills: int
    restarts: int
    bouncer_restarts: int = 0
    max_running: int | None = None  # the chaos queue's limit, if the run sets one
    lock_keys: int | None = None  # how many lock keys the jobs take in turn, if the run sets them


@dataclass
class Books:
    """What the run itself did and saw (kept in its memory, not the database)."""

    pushed: int = 0
    finished: bool = False
    kills: list[Kill] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)  # died after connecting: a failure
    failed_starts: list[str] = field(default_factory=list)  # could not connect at start: counted only
    unclean_stops: list[str] = field(default_factory=list)
    producer_error: str | None = None
    most_running: int = 0  # the most running jobs (live leases) of the queue seen in one sample
    keys_running_twice: list[str] = field(default_factory=list)  # samples' keys held by two live jobs


@dataclass
class Verdict:
    """The figures of a run and everything that broke the rule."""

    failures: list[str]
    figures: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.failures


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:EXAMPLES])
    return shown + (f" and {len(items) - EXAMPLES} more" if len(items) > EXAMPLES else "")


def _check_books(plan: Plan, books: Books, failures: list[str]) -> dict[str, int]:
    """The run's own events: finished, planned kills and restarts happened,
    no worker died unasked, every process stopped cleanly."""
    if not books.finished:
        failures.append("not every job was done before the deadline")
    if books.producer_error:
        failures.append(f"the producer failed: {books.producer_error}")
    kills = [kill for kill in books.kills if kill.exit_code == -9]
    holding = [kill for kill in kills if kill.held]
    missed = [f"pid {kill.pid} (exit code {kill.exit_code})" for kill in books.kills if kill.exit_code != -9]
    if missed:
        failures.append(f"kills that found their worker gone: {_names(missed)}")
    if len(kills) < plan.kills:
        failures.append(f"{len(kills)} kills happened, {plan.kills} were planned")
    if plan.kills and not holding:
        failures.append("no kill hit a worker that held jobs: the kills proved nothing")
    restarted = [r for r in books.restarts if r.old_pid and r.new_pid and r.old_pid != r.new_pid]
    restarts = [r for r in restarted if r.what == "postgres"]
    bouncer_restarts = [r for r in restarted if r.what == "pgbouncer"]
    if len(restarts) < plan.restarts:
        failures.append(
            f"{len(restarts)} restarts happened (new postmaster pid), {plan.restarts} were planned"
        )
    if len(bouncer_restarts) < plan.bouncer_restarts:
        failures.append(
            f"{len(bouncer_restarts)} PgBouncer restarts happened (new pid),"
            f" {plan.bouncer_restarts} were planned"
        )
    if plan.max_running is not None and books.most_running > plan.max_running:
        failures.append(f"{books.most_running} jobs ran at once, over max_running {plan.max_running}")
    if plan.lock_keys is not None and books.keys_running_twice:
        failures.append(
            f"lock keys held by two running jobs at once: {'; '.join(books.keys_running_twice[:5])}"
        )
    if books.unexpected_exits:
        failures.append(f"processes that died unasked: {_names(books.unexpected_exits)}")
    if books.unclean_stops:
        failures.append(f"processes that did not stop cleanly: {_names(books.unclean_stops)}")
    return {
        "kills": len(kills),
        "kills_holding_jobs": len(holding),
        "restarts": len(restarts),
        "bouncer_restarts": len(bouncer_restarts),
        "most_running_at_once": books.most_running,
    }


def _cut_off(run: Run, books: Books) -> str | None:
    """What cut off a run that did not complete its job, so it ran again:
    its own worker killed, or PostgreSQL or PgBouncer stopped, while it held the
    job (read after the worker was frozen), and not long after the run. The
    held job, not the clock, ties the cut to the claim: a claim sent just
    before the freeze can start on the server a moment after it. None if
    nothing did."""
    for kill in books.kills:
        if kill.pid == run.pid and run.job_id in (kill.held or ()) and kill.at <= run.at + CUT_OFF_WITHIN:
            return "kill"
    for restart in books.restarts:
        held = (run.pid, run.job_id) in (restart.held or ())
        if held and restart.down_at <= run.at + CUT_OFF_WITHIN:
            return "restart"
    return None


def _context(run: Run, its_runs: list[Run], books: Books, origin: float) -> str:
    """An unexplained duplicate with what the books say around it (seconds
    from the run's first claim), to tell a rule gap from a defect."""

    def t(when: float) -> str:
        return f"{when - origin:.3f}"

    runs = ", ".join(
        f"attempt {r.attempt} pid {r.pid} claimed {t(r.claimed_at)} ran {t(r.at)}"
        for r in sorted(its_runs, key=lambda r: r.attempt)
    )
    kills = ", ".join(
        f"{t(k.at)} (held it: {'yes' if run.job_id in (k.held or ()) else 'no'})"
        for k in books.kills
        if k.pid == run.pid
    )
    restarts = ", ".join(
        f"{r.what} {t(r.down_at)}-{t(r.up_at)}"
        f" (held it: {'yes' if (run.pid, run.job_id) in (r.held or ()) else 'no'})"
        for r in books.restarts
    )
    return (
        f"{run.token} attempt {run.attempt} [runs: {runs}; kills of pid {run.pid}: {kills or 'none'}; "
        f"restarts: {restarts or 'none'}]"
    )


def judge(plan: Plan, books: Books, jobs: list[Job], runs: list[Run]) -> Verdict:
    """Apply :data:`RULE` to a run's books, its final jobs and its ledger."""
    failures: list[str] = []
    figures = _check_books(plan, books, failures)
    tokens = {f"t{n}" for n in range(plan.jobs)}
    pushed = Counter(job.token for job in jobs)
    by_token = {job.token: job for job in jobs}
    if missing := sorted(tokens - set(pushed)):
        failures.append(f"{len(missing)} pushed jobs are not in the queue: {_names(missing)}")
    if twice := sorted(token for token, count in pushed.items() if count > 1):
        failures.append(f"{len(twice)} jobs are in the queue more than once: {_names(twice)}")
    if strangers := sorted(set(pushed) - tokens):
        failures.append(f"{len(strangers)} jobs in the queue were never pushed: {_names(strangers)}")
    states = Counter(job.state for job in jobs)
    if set(states) - {"done"}:
        stuck = [f"{job.token} ({job.state})" for job in jobs if job.state != "done"]
        failures.append(f"jobs not done at the end: {dict(states)}: {_names(stuck)}")

    runs_of: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        runs_of[run.token].append(run)
    if never := sorted(token for token in tokens if token in by_token and token not in runs_of):
        failures.append(f"{len(never)} jobs never ran: {_names(never)}")
    foreign = [f"{run.token} (job {run.job_id})" for run in runs if run.token not in by_token]
    foreign += [
        f"{run.token} (job {run.job_id}, attempt {run.attempt})"
        for run in runs
        if run.token in by_token
        and (run.job_id != by_token[run.token].id or run.attempt > by_token[run.token].attempt)
    ]
    if foreign:
        failures.append(f"runs that match no claim of their job: {_names(foreign)}")
    claims = Counter((run.token, run.attempt) for run in runs)
    if rerun := sorted(f"{token} attempt {attempt}" for (token, attempt), n in claims.items() if n > 1):
        failures.append(f"claims that ran more than once: {_names(rerun)}")

    excused: Counter[str] = Counter()
    unexcused: list[str] = []
    origin = min((run.claimed_at for run in runs), default=0.0)
    unrecorded: list[str] = []
    for token, its_runs in runs_of.items():
        job = by_token.get(token)
        if job is None or job.state != "done":
            continue
        if not any(run.attempt == job.attempt for run in its_runs):
            unrecorded.append(f"{token} (attempt {job.attempt})")
        for run in its_runs:
            if run.attempt == job.attempt:
                continue
            reason = _cut_off(run, books)
            if reason:
                excused[reason] += 1
            else:
                unexcused.append(_context(run, its_runs, books, origin))
    if unrecorded:
        failures.append(f"done jobs whose completing run is not recorded: {_names(unrecorded)}")
    if unexcused:
        failures.append(
            f"{len(unexcused)} duplicate runs cut off by no kill and no restart: {_names(unexcused)}"
        )
    figures.update(
        jobs=plan.jobs,
        done=states.get("done", 0),
        runs=len(runs),
        duplicates=len(runs) - len(runs_of),
        duplicates_killed=excused["kill"],
        duplicates_restart=excused["restart"],
        duplicates_unexcused=len(unexcused),
        never_ran=len(never),
    )
    return Verdict(failures, figures)
