"""A queue whose one handler ends its own process with the exit code it is
given: the target of the process pool's crash test (no database)."""

from __future__ import annotations

import os
import time

import pgtq

q = pgtq.PgTq("q", "dbname=never_connected")


@q.handler(name="exit")
def exit_with(code: int) -> None:
    """Ends the child process at once, as a crashing extension would."""
    os._exit(code)


@q.handler(name="linger")
def close_pipes_then_exit(code: int, linger: float) -> None:
    """Closes every descriptor but the standard three (the pool's pipe
    among them), waits ``linger`` seconds, then exits: the pool sees the
    pipe break well before the child can be reaped."""
    os.closerange(3, 65536)
    time.sleep(linger)
    os._exit(code)
