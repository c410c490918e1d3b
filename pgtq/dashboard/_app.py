"""The dashboard's web app (Starlette, Jinja2 templates rendered on the
server): its pages, its actions and how each request is guarded.

Pages: the overview (``/``), job lists (``/jobs``), a job (``/jobs/ID``),
schedules, workers, and ``/metrics``. Actions, only when they are on: retry,
cancel and delete of one job, the bulk retry of a queue's failed jobs, and
pause and resume of a queue; each is a POST carrying the session's CSRF
token, and the ones that touch many jobs or cannot be undone ask for
confirmation on a page of their own first (a pause touches no job, and a
resume undoes it). Without actions their routes do not exist (404) and no page shows a
form.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pgtq._inspection import JOB_STATES, JobFilter
from pgtq.dashboard import _format
from pgtq.dashboard._backend import Backend
from pgtq.dashboard._config import DashboardConfig
from pgtq.dashboard._paging import CursorError, decode_cursor, encode_cursor
from pgtq.dashboard._security import Guard, csrf_matches, new_csrf_token
from pgtq.errors import ConnectionFailedError, InvalidJobError, PgTqError
from pgtq.metrics import content_type as metrics_content_type
from pgtq.metrics import text as metrics_text

logger = logging.getLogger("pgtq.dashboard")

T = TypeVar("T")
MAX_BIGINT = 2**63 - 1
MAX_NAME = 200  # queue and task names are 1 to 200 characters (pgtq._checked_name)


def template_environment() -> jinja2.Environment:
    """The templates, with autoescaping on for every one of them: task
    names, arguments, results and tracebacks are data, shown as text."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pgtq.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(when=_format.when, duration=_format.duration, pretty_json=_format.pretty_json)
    environment.globals.update(job_states=JOB_STATES, jobs_url=jobs_url)
    return environment


def jobs_url(**filters: Any) -> str:
    """The path of a job list with the given filters (None or '' left out)."""
    query = {name: value for name, value in filters.items() if value not in (None, "")}
    return "/jobs" + (f"?{urlencode(query)}" if query else "")


def _name_filter(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and (
        len(value) > MAX_NAME or any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in value)
    ):
        raise HTTPException(
            400, f"bad {name} filter: names are 1 to 200 characters without control characters"
        )
    return value


def _job_id(request: Request) -> int:
    job_id = int(request.path_params["job_id"])
    if job_id > MAX_BIGINT:
        raise HTTPException(404, f"no job {job_id}")
    return job_id


class Dashboard:
    """The pages and actions, over one ``Backend``."""

    def __init__(self, config: DashboardConfig, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.templates = Jinja2Templates(env=template_environment())

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a (blocking) backend call off the event loop."""
        return await run_in_threadpool(function, *args)

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        """A page: ``template`` with ``context``, the session's CSRF token
        and its pending flash messages (shown once)."""
        session = request.session
        if "csrf" not in session:
            session["csrf"] = new_csrf_token()
        now = datetime.now(UTC)
        context.update(
            csrf=session["csrf"],
            flashes=session.pop("flash", []),
            actions=self.config.actions_enabled,
            read_only=self.config.read_only,
            reader_user=self.backend.reader_user,
            admin_user=self.backend.admin_user,
            now=now,
            ago=lambda moment: _format.relative(moment, now),
        )
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    # -- pages -------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        overview = await self._call(self.backend.overview)
        warnings = await self._call(self.backend.warnings)
        return self.render(
            request, "overview.html", overview=overview, warnings=warnings, has_pause=self.backend.has_pause
        )

    async def jobs(self, request: Request) -> Response:
        try:
            where = JobFilter(
                _name_filter(request, "queue"),
                _name_filter(request, "task"),
                request.query_params.get("state") or None,
            )
        except ValueError as error:
            raise HTTPException(400, str(error)) from error
        after = None
        if "after" in request.query_params:
            try:
                after = decode_cursor(where.order, request.query_params["after"])
            except CursorError as error:
                raise HTTPException(400, f"{error}: start again from the first page") from error
        page = await self._call(self.backend.jobs, where, after, self.config.page_size)
        filters = {"queue": where.queue, "task": where.task, "state": where.state}
        next_url = (
            jobs_url(**filters, after=encode_cursor(where.order, page.next_key))
            if page.next_key is not None
            else None
        )
        failed_count = None
        if where.state == "failed" and where.queue is not None and self.config.actions_enabled:
            failed_count = await self._call(self.backend.failed_count, where.queue, where.task)
        return self.render(
            request,
            "jobs.html",
            where=where,
            page=page,
            order=where.order.value,
            first_url=jobs_url(**filters) if after is not None else None,
            next_url=next_url,
            failed_count=failed_count,
        )

    async def job(self, request: Request) -> Response:
        job_id = _job_id(request)
        job = await self._call(self.backend.job, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} (it may have been deleted or purged)")
        cancellable = job.state in ("scheduled", "ready") or (
            job.state == "running"
            and self.backend.cancels_running_jobs
            and not job.extra.get("cancel_requested_at")
        )
        return self.render(request, "job.html", job=job, cancellable=cancellable)

    async def schedules(self, request: Request) -> Response:
        return self.render(request, "schedules.html", schedules=await self._call(self.backend.schedules))

    async def workers(self, request: Request) -> Response:
        return self.render(request, "workers.html", workers=await self._call(self.backend.workers))

    async def metrics(self, _request: Request) -> Response:
        text = await self._call(partial(metrics_text, self.backend.metrics, health=self.backend.health))
        return Response(text, media_type=metrics_content_type())

    async def health(self, _request: Request) -> Response:
        return PlainTextResponse("ok\n")

    # -- actions -------------------------------------------------------------------

    async def _form(self, request: Request) -> FormData:
        """The posted form, once its CSRF token is the session's (else 403)."""
        form = await request.form()
        if not csrf_matches(form.get("csrf"), request.session.get("csrf")):
            raise HTTPException(
                403,
                "CSRF token missing or wrong: this form did not come from this dashboard session."
                " Reload the page.",
            )
        return form

    @staticmethod
    def _flash(request: Request, kind: str, text: str) -> None:
        request.session.setdefault("flash", []).append([kind, text])

    @classmethod
    def _report(cls, request: Request, acted: bool, done: str, refused: str, **names: Any) -> None:
        """Flash what an action did: ``done`` when it acted, else ``refused``
        (each formatted with ``names``)."""
        cls._flash(request, "success" if acted else "warning", (done if acted else refused).format(**names))

    @staticmethod
    def _back(url: str) -> Response:
        return RedirectResponse(url, status_code=303)

    async def _act_on_job(
        self, request: Request, action: Callable[[int], bool], done: str, refused: str
    ) -> Response:
        """A POST acting on one job: run ``action(id)``, say ``done`` or
        ``refused`` (formatted with the id) and go back to the job."""
        job_id = _job_id(request)
        await self._form(request)
        self._report(request, await self._call(action, job_id), done, refused, id=job_id)
        return self._back(f"/jobs/{job_id}")

    async def retry(self, request: Request) -> Response:
        return await self._act_on_job(
            request,
            self.backend.retry,
            "Job {id} retried: it is ready again.",
            "Job {id} was not retried: only failed or cancelled jobs can be.",
        )

    async def cancel(self, request: Request) -> Response:
        return await self._act_on_job(
            request,
            self.backend.cancel,
            "Job {id} cancelled.",
            "Job {id} was not cancelled: it has started or finished already.",
        )

    async def confirm_delete(self, request: Request) -> Response:
        job_id = _job_id(request)
        job = await self._call(self.backend.job, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return self.render(
            request,
            "confirm.html",
            title=f"Delete job {job_id}?",
            question=f"Delete job {job_id} ({job.task} in queue {job.queue}, {job.state}) for good?",
            detail="Only finished jobs (done, failed, cancelled) can be deleted; this cannot be undone.",
            action=f"/jobs/{job_id}/delete",
            fields={},
            button="Delete the job",
            cancel_url=f"/jobs/{job_id}",
        )

    async def delete(self, request: Request) -> Response:
        job_id = _job_id(request)
        form = await self._form(request)
        if form.get("confirm") != "yes":
            return self._back(f"/jobs/{job_id}/delete")
        job = await self._call(self.backend.job, job_id)
        if await self._call(self.backend.delete, job_id):
            self._flash(request, "success", f"Job {job_id} deleted.")
            return self._back(jobs_url(queue=job.queue, state=job.state) if job is not None else "/jobs")
        self._flash(
            request, "warning", f"Job {job_id} was not deleted: only finished jobs can be (cancel it first)."
        )
        return self._back(f"/jobs/{job_id}")

    async def confirm_retry_failed(self, request: Request) -> Response:
        queue, task = _name_filter(request, "queue"), _name_filter(request, "task")
        if queue is None:
            raise HTTPException(400, "bulk retry needs a queue")
        count = await self._call(self.backend.failed_count, queue, task)
        what = f"queue {queue}" + (f", task {task}" if task else "")
        return self.render(
            request,
            "confirm.html",
            title="Retry failed jobs?",
            question=f"Retry all {count} failed jobs of {what}?",
            detail="Each becomes ready at once with its attempts reset (pgtq.retry_failed); workers take them"
            " from there. A job whose job key a pending job holds stays failed (that job does its work).",
            action="/retry-failed",
            fields={"queue": queue, "task": task or ""},
            button=f"Retry {count} jobs",
            cancel_url=jobs_url(queue=queue, task=task, state="failed"),
        )

    async def retry_failed(self, request: Request) -> Response:
        form = await self._form(request)
        queue, task = form.get("queue"), form.get("task") or None
        if not isinstance(queue, str) or not queue or (task is not None and not isinstance(task, str)):
            raise HTTPException(400, "bulk retry needs a queue")
        if form.get("confirm") != "yes":
            return self._back(
                "/retry-failed?" + urlencode({"queue": queue, **({"task": task} if task else {})})
            )
        retried = await self._call(self.backend.retry_failed, queue, task)
        what = f"queue {queue}" + (f", task {task}" if task else "")
        self._flash(request, "success", f"Retried {retried} failed jobs of {what}: they are ready again.")
        return self._back(jobs_url(queue=queue, task=task, state="ready"))

    async def _act_on_queue(
        self, request: Request, action: Callable[[str], bool], done: str, refused: str
    ) -> Response:
        """A POST acting on the queue its form names: run ``action(queue)``,
        say ``done`` or ``refused`` (formatted with the queue) and go back to
        the overview."""
        form = await self._form(request)
        queue = form.get("queue")
        if not isinstance(queue, str) or not queue or len(queue) > MAX_NAME:
            raise HTTPException(400, "this action needs a queue name of 1 to 200 characters")
        self._report(request, await self._call(action, queue), done, refused, queue=queue)
        return self._back("/")

    async def pause(self, request: Request) -> Response:
        return await self._act_on_queue(
            request,
            self.backend.pause,
            "Queue {queue} paused: workers take none of its jobs until it is resumed.",
            "Queue {queue} was paused already.",
        )

    async def resume(self, request: Request) -> Response:
        return await self._act_on_queue(
            request,
            self.backend.resume,
            "Queue {queue} resumed: workers take its jobs again.",
            "Queue {queue} was not paused.",
        )

    # -- errors ----------------------------------------------------------------------

    async def http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return self.render(
            request,
            "error.html",
            status=error.status_code,
            status_code=error.status_code,
            message=error.detail,
        )

    async def pgtq_error(self, request: Request, error: Exception) -> Response:
        status = (
            503
            if isinstance(error, ConnectionFailedError)
            else 400
            if isinstance(error, InvalidJobError)
            else 500
        )
        logger.warning("%s %s: %s", request.method, request.url.path, error)
        return self.render(request, "error.html", status=status, status_code=status, message=str(error))

    # -- routes ----------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/", self.overview, name="overview"),
            Route("/jobs", self.jobs, name="jobs"),
            Route("/jobs/{job_id:int}", self.job, name="job"),
            Route("/schedules", self.schedules, name="schedules"),
            Route("/workers", self.workers, name="workers"),
            Route("/metrics", self.metrics, name="metrics"),
            Route("/healthz", self.health, name="health"),
            Mount("/static", StaticFiles(packages=[("pgtq.dashboard", "static")]), name="static"),
        ]
        if self.config.actions_enabled:
            routes += [
                Route("/jobs/{job_id:int}/retry", self.retry, methods=["POST"]),
                Route("/jobs/{job_id:int}/cancel", self.cancel, methods=["POST"]),
                Route("/jobs/{job_id:int}/delete", self.confirm_delete, methods=["GET"]),
                Route("/jobs/{job_id:int}/delete", self.delete, methods=["POST"]),
                Route("/retry-failed", self.confirm_retry_failed, methods=["GET"]),
                Route("/retry-failed", self.retry_failed, methods=["POST"]),
            ]
            if self.backend.has_pause:
                routes += [
                    Route("/pause", self.pause, methods=["POST"]),
                    Route("/resume", self.resume, methods=["POST"]),
                ]
        return routes


def create_app(config: DashboardConfig, backend: Backend) -> Starlette:
    """The ASGI app of the dashboard over ``backend``, guarded as
    ``config`` says. Closing the app (its lifespan's end) closes the backend."""
    dashboard = Dashboard(config, backend)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            backend.close()

    return Starlette(
        routes=dashboard.routes(),
        middleware=[
            Middleware(Guard, token=config.token, allowed_hosts=config.host_names),
            Middleware(
                SessionMiddleware,
                secret_key=new_csrf_token(),
                session_cookie="pgtq_dashboard",
                max_age=None,
                same_site="strict",
                https_only=config.secure_cookies,
            ),
        ],
        exception_handlers={HTTPException: dashboard.http_error, PgTqError: dashboard.pgtq_error},
        lifespan=lifespan,
    )
