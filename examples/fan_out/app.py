"""Fan-out: one job per file, run by any number of workers at once, and
their results collected; prints what ``sha256sum`` prints.

    PGTQ_DSN="dbname=app" pgtq worker app:q --concurrency 4    # on one or more machines
    PGTQ_DSN="dbname=app" python app.py FOLDER

``push_many`` enqueues every job in one round trip; ``wait_many`` waits
for them all by notification (one connection, however many jobs) and
returns their outcomes in the order pushed. A job that failed does not stop
the others: it is reported, and the exit status is 1.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pgtq

q = pgtq.PgTq("digests", os.environ["PGTQ_DSN"])


@q.handler(max_attempts=1)
def sha256(path: str) -> str:
    """The SHA-256 of one file, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digests(paths: list[str], timeout: float = 600) -> tuple[dict[str, str], dict[str, str]]:
    """Each file's digest, and the error of each file whose job failed."""
    job_ids = sha256.push_many([(path,) for path in paths])
    outcomes = q.wait_many(job_ids, timeout=timeout)
    done, failed = {}, {}
    for path, outcome in zip(paths, outcomes, strict=True):
        if outcome.ok:
            done[path] = outcome.result
        else:
            failed[path] = outcome.error or outcome.state
    return done, failed


def main(folder: str) -> int:
    paths = sorted(str(path) for path in Path(folder).rglob("*") if path.is_file())
    done, failed = digests(paths)
    for path, digest in done.items():
        print(f"{digest}  {path}")
    for path, error in failed.items():
        print(f"{path}: {error.splitlines()[0]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
