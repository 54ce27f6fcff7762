"""The Django admin: taskq's monitoring pages and its dead-letter queue.

Five read-only lists (failed, dirty, active, pending, future), each a proxy model, and
a summary page. Rows are never added or edited by hand; the only writes are the
actions ("Retry now", "Run now", "Cancel", delete), each guarded by a permission on ``Task``.
Pages stay fast on a table of millions of rows: no exact count where the planner can
estimate one, and every list is ordered by an indexed column.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.filters import AllValuesFieldListFilter
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import router
from django.db.models import QuerySet
from django.db.models.functions import Left, Right
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import dateformat
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from taskq import admin_display as show
from taskq import history, metrics, queues, registry, schedules
from taskq.backends.estimates import estimated_count
from taskq.charts import Line, line_chart
from taskq.clock import DatabaseNow
from taskq.conf import settings
from taskq.models import (
    DISTINCT_VALUES_LIMIT,
    ActiveTask,
    DirtyTask,
    FailedTask,
    FutureTask,
    PendingTask,
    Summary,
    Task,
    TaskQuerySet,
    Worker,
)

#: Below this many rows an exact count is cheap enough and exact numbers are nicer.
EXACT_COUNT_BELOW = 10_000
#: Characters of a task's arguments a list row reads, and of its error's end: a list
#: never reads a whole argument or traceback, however big.
PREVIEW_CHARS = 200
#: Characters of arguments or traceback a task's own page shows.
DETAIL_CHARS = 64 * 1024
#: The largest primary key a row-action URL may name (a signed 64-bit integer).
MAX_PK = 2**63 - 1


class EstimatedCountPaginator(Paginator):
    """Count exactly when few rows match, else trust the query planner's estimate.

    ``estimated`` says which, and the list's pagination marks an estimate with "≈".
    """

    estimated = False

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        estimate = estimated_count(rows) if isinstance(rows, QuerySet) else None
        if estimate is None or estimate < EXACT_COUNT_BELOW:
            return super().count
        self.estimated = True
        return estimate


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pretty_json(text: str) -> str:
    if len(text) > DETAIL_CHARS:
        return text  # shown cut anyway; indenting megabytes helps nobody
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text  # a corrupt row: show what is there


def _capped_pre(text: str) -> str:
    """``text`` in a ``<pre>``, cut after ``DETAIL_CHARS`` with a note of what is left."""
    if len(text) <= DETAIL_CHARS:
        return format_html("<pre>{}</pre>", text)
    more = len(text[DETAIL_CHARS:].encode())
    return format_html(
        '<pre>{}</pre><p class="help">… {} more bytes not shown</p>', text[:DETAIL_CHARS], more
    )


class PreviewChangeList(ChangeList):
    """A list whose rows read previews of the big columns, cut by the database.

    ``args``, ``kwargs`` and ``error`` are deferred: a row with a 50 MB argument costs
    a list page ``PREVIEW_CHARS`` characters of it, not 50 MB read and thrown away.
    """

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        rows = super().get_queryset(request, exclude_parameters)
        return rows.defer("args", "kwargs", "error").annotate(
            args_preview=Left("args", PREVIEW_CHARS),
            kwargs_preview=Left("kwargs", PREVIEW_CHARS),
            error_tail=Right("error", PREVIEW_CHARS),
            db_now=DatabaseNow(),  # ages are judged by the database's clock
        )


class IndexedValuesListFilter(AllValuesFieldListFilter):
    """The values of a column among the tasks in the list's state, found through an index.

    Django's own filter runs ``SELECT DISTINCT`` over the whole group, which reads every
    row of it: seconds on a million pending tasks. This one asks for the distinct values
    among the tasks in the group's *state* (``TaskQuerySet.values_in_state``: one index
    probe per value where an index allows). The pending and future lists share the
    queued state, so each may offer a queue or name that only the other one holds;
    choosing it shows an empty list.
    """

    def __init__(
        self,
        field: Any,
        request: HttpRequest,
        params: Any,
        model: Any,
        model_admin: Any,
        field_path: str,
    ) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        tasks = Task.objects.using(model_admin.get_queryset(request).db)
        values = tasks.values_in_state(model_admin.state, field.name, DISTINCT_VALUES_LIMIT + 1)
        #: More values exist than the filter lists.
        self.cut = len(values) > DISTINCT_VALUES_LIMIT
        self.lookup_choices: Any = values[:DISTINCT_VALUES_LIMIT]

    def choices(self, changelist: Any) -> Any:
        yield from super().choices(changelist)
        if self.cut:
            yield {
                "selected": False,
                "query_string": changelist.get_query_string(),
                "display": f"… only the first {DISTINCT_VALUES_LIMIT} are listed",
            }


class TaskGroupAdmin(admin.ModelAdmin):
    """A read-only list of one group of tasks, with that group's actions.

    Each group shows the columns that mean something in its state (``list_display`` of
    the subclasses); times carry seconds, ages are judged by the database's clock.
    """

    #: The ``TaskQuerySet`` method that selects this group.
    group: str
    #: The ``Task.State`` of every task in this group.
    state: Task.State
    #: The per-row button: (URL name suffix, label), or None.
    row_action: tuple[str, str] | None = None

    list_display: Any = ("id", "task_name", "short_arguments", "queue", "retries", "worker_label")
    list_display_links = ("id", "task_name")
    list_filter = (("queue", IndexedValuesListFilter), ("name", IndexedValuesListFilter))
    search_fields = ("name",)
    list_select_related = ("worker",)
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the whole group
    paginator = EstimatedCountPaginator
    change_list_template = "admin/taskq/change_list.html"
    change_form_template = "admin/taskq/change_form.html"
    # Each subclass orders by an indexed column and then the primary key, in the same
    # direction: without "pk" Django appends "-pk" for a total order, and on MariaDB
    # ``ORDER BY eta ASC, id DESC`` cannot be read off the (state, eta) index (InnoDB
    # appends the id ascending), so every page sorted the whole group first.
    fields = (
        "id",
        "name",
        "call",
        "queue",
        "priority",
        "state",
        "retries_of_max",
        "due_at",
        "expires_at",
        "created",
        "started",
        "failed",
        "run_time",
        "worker_detail",
        "headers",
        "traceback",
    )
    readonly_fields = fields

    # Permissions: the proxies share the permissions of Task, so one grant covers all.

    def _user_may(self, request: HttpRequest, action: str) -> bool:
        return request.user.has_perm(f"taskq.{action}_task")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._user_may(request, "view") or self._user_may(request, "change")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Rows are never edited, so the index says "View", not "Change", and a task's
        # page has no form; acting on a row is ``has_act_permission``.
        return False

    def has_act_permission(self, request: HttpRequest) -> bool:
        """May the user retry, run or cancel tasks? ``change_task`` grants it."""
        return self._user_may(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._user_may(request, "delete")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return getattr(super().get_queryset(request), self.group)()

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # The task's page reads the database's "now" with the row, for its ages.
        task = super().get_object(request, object_id, from_field)
        if task is not None:
            task.db_now = (
                Task.objects.using(task._state.db)
                .filter(pk=task.pk)
                .annotate(now=DatabaseNow())
                .values_list("now", flat=True)
                .first()
            )
        return task

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PreviewChangeList

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))
        if self.row_action and self.has_act_permission(request):
            columns.append("row_button")
        return columns

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # Django ignores an action the user may not run; a forged one deserves a 403.
        action = request.POST.get("action") if request.method == "POST" else None
        if action and action not in self.get_actions(request):
            raise PermissionDenied
        title = str(self.model._meta.verbose_name_plural).capitalize()
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        buttons = []
        if self.row_action and self.has_act_permission(request) and object_id.isdigit():
            suffix, label = self.row_action
            buttons.append((self._action_url(suffix, object_id), label))
        context = {"task_buttons": buttons, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    # List columns.

    @admin.display(description="name", ordering="name")
    def task_name(self, task: Task) -> str:
        # A dotted name may break after each dot, so a narrow column stays readable.
        return format_html_join(
            mark_safe(".<wbr>"), "{}", ((part,) for part in task.name.split("."))
        )

    @admin.display(description="arguments")
    def short_arguments(self, task: Task) -> str:
        # The list's rows carry previews (PreviewChangeList); nothing else shows this.
        args, kwargs = getattr(task, "args_preview", ""), getattr(task, "kwargs_preview", "")
        complete = len(args) < PREVIEW_CHARS and len(kwargs) < PREVIEW_CHARS
        return show.arguments_preview(args, kwargs, complete, 60)

    @admin.display(description="last error")
    def last_error(self, task: Task) -> str:
        lines = [line for line in getattr(task, "error_tail", "").splitlines() if line.strip()]
        return _shorten(lines[-1], 100) if lines else ""

    @admin.display(description="worker", ordering="worker__host")
    def worker_label(self, task: Task) -> str:
        if task.worker:
            return f"{task.worker.host}:{task.worker.pid}"
        if task.worker_ident:
            return f"{_host_pid(task.worker_ident)} (gone)"
        return "—"

    @admin.display(description="failed at", ordering="failed_at")
    def failed_at_column(self, task: Task) -> str:
        return show.moment(task.failed_at)

    @admin.display(description="started at", ordering="started_at")
    def started_at_column(self, task: Task) -> str:
        return show.moment(task.started_at)

    @admin.display(description="due at", ordering="eta")
    def eta_column(self, task: Task) -> str:
        return show.moment(task.eta)

    @admin.display(description="run time")
    def run_time_column(self, task: Task) -> str:
        return show.duration(show.seconds_between(task.started_at, task.failed_at))

    @admin.display(description="running for")
    def running_for(self, task: Task) -> str:
        return show.duration(show.seconds_between(task.started_at, _now_of(task)))

    @admin.display(description="waiting for")
    def waiting_for(self, task: Task) -> str:
        return show.duration(show.seconds_between(task.eta, _now_of(task)))

    @admin.display(description="due in")
    def due_in(self, task: Task) -> str:
        return show.duration(show.seconds_between(_now_of(task), task.eta))

    @admin.display(description="last heartbeat")
    def last_heartbeat(self, task: Task) -> str:
        if task.worker is None:
            return "—"
        age = show.seconds_between(task.worker.heartbeat, _now_of(task))
        return f"{show.moment(task.worker.heartbeat)} ({show.duration(age)} ago)"

    @admin.display(description="dirty since")
    def dirty_since(self, task: Task) -> str:
        """When the worker's heartbeat went stale: its last beat plus ``DIRTY_AFTER``."""
        if task.worker is None:
            return "—"
        since = task.worker.heartbeat + timedelta(seconds=settings.DIRTY_AFTER)
        age = show.seconds_between(since, _now_of(task))
        return f"{show.moment(since)} ({show.duration(age)})"

    @admin.display(description="")
    def row_button(self, task: Task) -> str:
        assert self.row_action is not None
        suffix, label = self.row_action
        # The list sits inside the changelist form, which carries the CSRF token.
        return format_html(
            '<button type="submit" class="button" formaction="{}">{}</button>',
            self._action_url(suffix, task.pk),
            label,
        )

    # A task's page.

    @admin.display(description="call")
    def call(self, task: Task) -> str:
        if len(task.args) + len(task.kwargs) <= DETAIL_CHARS:
            text = show.call(task.name, task.args, task.kwargs)
            if text is not None:
                return format_html("<pre>{}</pre>", text)
        # Too big to decode for a page, or not taskq's typed JSON: the stored text.
        return format_html(
            '<p class="help">Arguments as stored:</p>{}{}',
            _capped_pre(_pretty_json(task.args)),
            _capped_pre(_pretty_json(task.kwargs)),
        )

    @admin.display(description="retries")
    def retries_of_max(self, task: Task) -> str:
        try:
            limit = registry.get(task.name).policy.max_retries
        except registry.UnregisteredTask:
            return f"{task.retries} (the task is not registered in this process)"
        return f"{task.retries} of {limit}" if limit is not None else f"{task.retries} (no limit)"

    @admin.display(description="due at")
    def due_at(self, task: Task) -> str:
        if task.state != Task.State.QUEUED:
            return show.moment(task.eta)
        now = _now_of(task)
        if now is not None and task.eta > now:
            return (
                f"{show.moment(task.eta)} (in {show.duration(show.seconds_between(now, task.eta))})"
            )
        return f"{show.moment(task.eta)} (waiting for {self.waiting_for(task)})"

    @admin.display(description="expires")
    def expires_at(self, task: Task) -> str:
        return show.moment(task.expires)

    @admin.display(description="created")
    def created(self, task: Task) -> str:
        return show.moment(task.created_at)

    @admin.display(description="started")
    def started(self, task: Task) -> str:
        return show.moment(task.started_at)

    @admin.display(description="failed")
    def failed(self, task: Task) -> str:
        return show.moment(task.failed_at)

    @admin.display(description="run time")
    def run_time(self, task: Task) -> str:
        if task.state == Task.State.FAILED:
            return self.run_time_column(task)
        if task.state == Task.State.STARTED:
            return f"running for {self.running_for(task)}"
        return "—"

    @admin.display(description="worker")
    def worker_detail(self, task: Task) -> str:
        if task.worker is not None:
            return f"{task.worker.ident}; last heartbeat {self.last_heartbeat(task)}"
        if task.worker_ident:
            return f"{task.worker_ident} (the worker that last ran it; gone)"
        return "—"

    @admin.display(description="traceback")
    def traceback(self, task: Task) -> str:
        return _capped_pre(task.error) if task.error else "—"

    # The actions, in bulk and per row.

    def _url_name(self, suffix: str) -> str:
        opts = self.model._meta
        return f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{suffix}"

    def _action_url(self, suffix: str, pk: Any) -> str:
        return reverse(self._url_name(suffix), args=[pk], current_app=self.admin_site.name)

    def get_urls(self) -> list[Any]:
        urls = super().get_urls()
        if not self.row_action:
            return urls
        suffix, _ = self.row_action
        opts = self.model._meta
        view = self.admin_site.admin_view(require_POST(self.row_action_view))
        name = f"{opts.app_label}_{opts.model_name}_{suffix}"
        return [path(f"<path:object_id>/{suffix}/", view, name=name), *urls]

    def row_action_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_act_permission(request):
            raise PermissionDenied
        # str.isdigit() and int() accept other scripts' digits ("١٢٣", "²").
        if not (object_id.isascii() and object_id.isdigit() and int(object_id) <= MAX_PK):
            raise Http404(f"no task {object_id!r}")
        assert self.row_action is not None
        suffix, _ = self.row_action
        getattr(self, suffix)(request, self.get_queryset(request).filter(pk=object_id))
        changelist = reverse(self._url_name("changelist"), current_app=self.admin_site.name)
        return HttpResponseRedirect(changelist)

    def _report(self, request: HttpRequest, count: int, what: str) -> None:
        noun = "task" if count == 1 else "tasks"
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(request, f"{what} {count} {noun}.", level)

    @admin.action(description="Retry now", permissions=["act"])
    def retry(self, request: HttpRequest, queryset: TaskQuerySet) -> None:
        self._report(request, queryset.retry(), "Queued again, due now:")

    @admin.action(description="Run now", permissions=["act"])
    def run_now(self, request: HttpRequest, queryset: TaskQuerySet) -> None:
        self._report(request, queryset.run_now(), "Made due now:")


def _now_of(task: Task) -> Any:
    """The database's time read with ``task`` (by the list's query or ``get_object``)."""
    return getattr(task, "db_now", None)


def _host_pid(ident: str) -> str:
    """``web-1:4242`` of a worker ident ``web-1:4242:ab12cd34``."""
    return ident.rsplit(":", 1)[0] if ident.count(":") >= 2 else ident


@admin.register(FailedTask)
class FailedTaskAdmin(TaskGroupAdmin):
    group = "failed"
    state = Task.State.FAILED
    row_action = ("retry", "Retry now")
    actions = ["retry"]
    ordering = ("-failed_at", "-pk")
    list_display = (
        "id",
        "task_name",
        "short_arguments",
        "queue",
        "failed_at_column",
        "run_time_column",
        "retries",
        "last_error",
        "worker_label",
    )


@admin.register(DirtyTask)
class DirtyTaskAdmin(TaskGroupAdmin):
    group = "dirty"
    state = Task.State.STARTED
    row_action = ("retry", "Retry now")
    actions = ["retry"]
    ordering = ("started_at", "pk")
    list_display = (
        "id",
        "task_name",
        "short_arguments",
        "queue",
        "started_at_column",
        "dirty_since",
        "last_heartbeat",
        "retries",
        "worker_label",
    )


@admin.register(ActiveTask)
class ActiveTaskAdmin(TaskGroupAdmin):
    group = "active"
    state = Task.State.STARTED
    ordering = ("started_at", "pk")
    list_display = (
        "id",
        "task_name",
        "short_arguments",
        "queue",
        "started_at_column",
        "running_for",
        "retries",
        "worker_label",
    )
    row_action = ("cancel", "Cancel")
    actions = None  # only one running task at a time is stopped, from its own row

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def cancel(self, request: HttpRequest, queryset: TaskQuerySet) -> None:
        """Ask the task's worker to interrupt it; the worker then deletes the row."""
        asked = queryset.update(cancel_requested_by=f"admin user {request.user.get_username()}")
        self._report(request, asked, "Asked to stop:")


@admin.register(PendingTask)
class PendingTaskAdmin(TaskGroupAdmin):
    group = "pending"
    state = Task.State.QUEUED
    row_action = ("run_now", "Run now")
    actions = ["run_now"]
    ordering = ("eta", "pk")
    list_display = (
        "id",
        "task_name",
        "short_arguments",
        "queue",
        "priority",
        "eta_column",
        "waiting_for",
        "retries",
    )


@admin.register(FutureTask)
class FutureTaskAdmin(TaskGroupAdmin):
    group = "future"
    state = Task.State.QUEUED
    row_action = ("run_now", "Run now")
    actions = ["run_now"]
    ordering = ("eta", "pk")
    list_display = (
        "id",
        "task_name",
        "short_arguments",
        "queue",
        "priority",
        "eta_column",
        "due_in",
        "retries",
    )


@admin.register(Summary)
class SummaryAdmin(admin.ModelAdmin):
    """Counts per task name and queue, the oldest pending task, the live workers, and
    the schedules (``TASKQ_SCHEDULE``) with their last and next slot.

    The counts are ``metrics.bounded_counts()``: exact where that is cheap, otherwise a
    lower bound ("≥") or the planner's estimate ("≈"), so that the page stays fast on
    a table of millions of tasks.
    """

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # As for the lists: change_task implies the right to look.
        return request.user.has_perm("taskq.view_task") or request.user.has_perm(
            "taskq.change_task"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        snapshot = metrics.bounded_counts()  # snapshot() would read every row
        # Each row carries the database's "now": ages are judged by the database's clock.
        workers = list(Worker.objects.order_by("host", "pid").annotate(now=DatabaseNow()))
        current = {
            task.worker_id: task
            for task in Task.objects.started()
            .filter(worker__in=workers)
            .only("name", "worker", "started_at")
        }
        lists = {
            group: reverse(f"{self.admin_site.name}:taskq_{group}task_changelist")
            for group in metrics.GROUPS
        }

        def counts(by_group: dict[str, metrics.Tally], column: str, value: str) -> list[Any]:
            query = urlencode({column: value})
            return [(by_group[group], f"{lists[group]}?{query}") for group in metrics.GROUPS]

        hours = request.GET.get("hours", "")
        hours_shown = int(hours) if hours in {str(h) for h in HISTORY_HOURS} else HISTORY_HOURS[1]
        context = {
            **self.admin_site.each_context(request),
            "title": "Task queue summary",
            "opts": self.model._meta,
            "snapshot": snapshot,
            "values_limit": DISTINCT_VALUES_LIMIT,
            "estimated": not all(
                tally.exact
                for by_group in [
                    snapshot,
                    *snapshot["queues"].values(),
                    *snapshot["tasks"].values(),
                ]
                for tally in (by_group[group] for group in metrics.GROUPS)
            ),
            "groups": [(group, snapshot[group], lists[group]) for group in metrics.GROUPS],
            "breakdowns": [
                (
                    caption,
                    column,
                    [
                        (name, counts(row, field, name))
                        for name, row in sorted(snapshot[key].items())
                    ],
                )
                for caption, column, field, key in [
                    ("Per task name", "task", "name", "tasks"),
                    ("Per queue", "queue", "queue", "queues"),
                ]
            ],
            "queue_rows": queues.overview(counts=snapshot),
            "can_pause": request.user.has_perm("taskq.change_task"),
            "workers": [_worker_row(worker, current.get(worker.pk), lists) for worker in workers],
            "live_after": settings.DIRTY_AFTER,
            "hours_shown": hours_shown,
            "hour_choices": HISTORY_HOURS,
            "charts": history_charts(hours_shown * 60),
        }
        context["schedules"] = schedules.status(router.db_for_read(Task))
        return TemplateResponse(request, "admin/taskq/summary.html", context)

    # Pause and resume, from the buttons of the summary's queue table.

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(require_POST(self.queue_view))
        return [path("queue/", view, name="taskq_summary_queue"), *super().get_urls()]

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        """POST ``action`` (pause, resume) and ``queue``; needs the ``change_task``
        permission (and the CSRF token, as every admin view)."""
        if not request.user.has_perm("taskq.change_task"):
            raise PermissionDenied
        action, name = request.POST.get("action"), request.POST.get("queue", "")
        if action not in ("pause", "resume"):
            return HttpResponseBadRequest("action must be pause or resume")
        try:
            getattr(queues, action)(name)
        except ValueError as error:
            return HttpResponseBadRequest(str(error))
        self.message_user(request, f"Queue {name!r} {action}d.", messages.SUCCESS)
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:taskq_summary_changelist"))


#: The spans of history the summary offers, in hours; the second is the default.
HISTORY_HOURS = (1, 3, 6, 24)


def _worker_row(worker: Worker, task: Task | None, lists: dict[str, str]) -> dict[str, Any]:
    """A worker as the summary shows it: live or gone, and what it runs for how long."""
    age = show.seconds_between(worker.heartbeat, worker.now) or 0.0  # type: ignore[attr-defined]
    running = show.seconds_between(task.started_at, worker.now) if task else None  # type: ignore[attr-defined]
    group = "active" if age <= settings.DIRTY_AFTER else "dirty"
    return {
        "worker": worker,
        "live": age <= settings.DIRTY_AFTER,
        "age": age,
        "silent": show.duration(age),
        "current": task,
        "current_url": f"{lists[group]}{task.pk}/change/" if task else None,
        "running_for": show.duration(running),
        "heartbeat": show.moment(worker.heartbeat),
    }


def history_charts(minutes: int) -> list[str]:
    """The summary's charts of the last ``minutes`` minutes (``taskq.history``)."""
    entries = history.series(minutes)
    labels = [dateformat.format(show.local(entry["minute"]), "H:i") for entry in entries]

    def values(kind: str) -> list[float | None]:
        return [entry[kind] for entry in entries]

    return [
        line_chart(
            "Tasks finished per minute",
            labels,
            [
                Line("succeeded", "#2e7d32", values("succeeded")),
                Line("failed", "#c62828", values("failed")),
                Line("retried", "#ef6c00", values("retried")),
            ],
        ),
        line_chart(
            "Backlog: pending tasks", labels, [Line("pending", "#1565c0", values("pending"))]
        ),
        line_chart(
            "Oldest pending task's age",
            labels,
            [Line("oldest pending", "#6a1b9a", values("oldest_pending_age"))],
            unit=" s",
        ),
    ]
