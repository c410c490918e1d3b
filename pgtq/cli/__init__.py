"""The command line (the top layer): ``pgtq COMMAND``.

It parses what the user typed (click), hands it to the worker runtime
(``pgtq.worker``) or the client API (``Database``, ``PgTq``,
``pgtq.cron``), and shows the answer: tables for people (rich), ``--json``
for scripts. It holds no queue rules and sends no SQL of its own.

Exit codes (``EXIT_CODES``), the same for every command:

    0    done
    1    an operational error: the database is unreachable, a right is
         missing, a query failed, the user declined a confirmation
    2    a usage error: an unknown option, a bad value (also one the
         database refuses as invalid), a missing DSN, a target that does
         not name a queue
    3    nothing to act on: an unknown job id, or a job whose state does
         not allow the action, a queue paused already (pause) or not
         paused (resume): nothing was changed
    4    not available here: a feature this schema, this server or this
         installation does not have (pause, resume and limits before schema
         0.3.0, schedules before the cron feature, pg_cron not installed,
         the dashboard extra missing, the health check before 0.14.0)
    5    pgtq doctor: a check warns (the table says what it found)
    130  interrupted (Ctrl-C)

Errors are one line on stderr, ``pgtq: error: ...``, with no traceback.

One module per group of commands (``_running``, ``_stats``, ``_looking``,
``_acting``, ``_pushing``, ``_flow``, ``_pg_cron``, ``_dashboard``), each
adding its commands to the group of ``_common``; this module imports them
all and holds the entry point, ``main``.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from pgtq._targets import TargetError
from pgtq.cli import (  # noqa: F401  (each adds its commands to the group)
    _acting,
    _dashboard,
    _flow,
    _looking,
    _pg_cron,
    _pushing,
    _running,
    _stats,
)
from pgtq.cli._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOTHING,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    NothingToDo,
    Unavailable,
    UsageError,
    _error,
    cli,
)
from pgtq.errors import InvalidJobError, PgTqError

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pgtq`` console script: runs the command and
    returns its exit code (see the module's docstring)."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="pgtq", standalone_mode=False
        )
    except click.UsageError as error:
        hint = f" (see: {error.ctx.command_path} --help)" if error.ctx is not None else ""
        _error(f"{error.format_message()}{hint}")
        return EXIT_USAGE
    except click.ClickException as error:  # a file that does not exist, ...
        _error(error.format_message())
        return EXIT_USAGE
    except click.exceptions.Abort:
        return EXIT_INTERRUPTED
    except (UsageError, TargetError) as error:
        _error(str(error))
        return EXIT_USAGE
    except InvalidJobError as error:  # the database refused a value the user gave
        _error(str(error))
        return EXIT_USAGE
    except NothingToDo as error:
        _error(str(error))
        return EXIT_NOTHING
    except Unavailable as error:
        _error(str(error))
        return EXIT_UNAVAILABLE
    except PgTqError as error:
        _error(str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return int(result or 0)
