"""The Django admin: taskq's monitoring pages and its dead-letter queue.

Five read-only lists (failed, dirty, active, pending, future), each a proxy model, and
a summary page. Rows are never added or edited by hand; the only writes are the
actions ("Retry now", "Run now", "Cancel", delete), each guarded by a permission on ``Task``.
Pages stay fast on a table of millions of rows: no exact count where the planner can
estimate one, and every list is ordered by an indexed column.
"""

from __future__ import annotations

import json
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
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from taskq import metrics, queues, schedules
from taskq.backends.estimates import estimated_count
from taskq.clock import DatabaseNow
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
    """A read-only list of one group of tasks, with that group's actions."""

    #: The ``TaskQuerySet`` method that selects this group.
    group: str
    #: The ``Task.State`` of every task in this group.
    state: Task.State
    #: The per-row button: (URL name suffix, label), or None.
    row_action: tuple[str, str] | None = None

    list_display = (
        "name",
        "short_arguments",
        "queue",
        "priority",
        "eta",
        "retries",
        "last_error",
        "worker_label",
    )
    list_display_links = ("name",)
    list_filter = (("queue", IndexedValuesListFilter), ("name", IndexedValuesListFilter))
    search_fields = ("name",)
    list_select_related = ("worker",)
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the whole group
    paginator = EstimatedCountPaginator
    # Each subclass orders by an indexed column and then the primary key, in the same
    # direction: without "pk" Django appends "-pk" for a total order, and on MariaDB
    # ``ORDER BY eta ASC, id DESC`` cannot be read off the (state, eta) index (InnoDB
    # appends the id ascending), so every page sorted the whole group first.
    fields = (
        "name",
        "queue",
        "priority",
        "state",
        "eta",
        "expires",
        "retries",
        "version",
        "worker",
        "created_at",
        "started_at",
        "failed_at",
        "arguments",
        "keyword_arguments",
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
        # Rows are never edited; "change" is the right to act on them from the list.
        return obj is None and self._user_may(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._user_may(request, "delete")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return getattr(super().get_queryset(request), self.group)()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PreviewChangeList

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))
        if self.row_action and self.has_change_permission(request):
            columns.append("row_button")
        return columns

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # Django ignores an action the user may not run; a forged one deserves a 403.
        action = request.POST.get("action") if request.method == "POST" else None
        if action and action not in self.get_actions(request):
            raise PermissionDenied
        title = str(self.model._meta.verbose_name_plural).capitalize()
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    # Columns and detail fields.

    @admin.display(description="arguments")
    def short_arguments(self, task: Task) -> str:
        # The list's rows carry previews (PreviewChangeList); nothing else shows this.
        args, kwargs = getattr(task, "args_preview", ""), getattr(task, "kwargs_preview", "")
        kwargs = "" if kwargs == "{}" else f" {kwargs}"
        return _shorten(f"{args}{kwargs}", 60)

    @admin.display(description="last error")
    def last_error(self, task: Task) -> str:
        lines = [line for line in getattr(task, "error_tail", "").splitlines() if line.strip()]
        return _shorten(lines[-1], 100) if lines else ""

    @admin.display(description="worker", ordering="worker__host")
    def worker_label(self, task: Task) -> str:
        return f"{task.worker.host}:{task.worker.pid}" if task.worker else "—"

    @admin.display(description="arguments")
    def arguments(self, task: Task) -> str:
        return _capped_pre(_pretty_json(task.args))

    @admin.display(description="keyword arguments")
    def keyword_arguments(self, task: Task) -> str:
        return _capped_pre(_pretty_json(task.kwargs))

    @admin.display(description="traceback")
    def traceback(self, task: Task) -> str:
        return _capped_pre(task.error) if task.error else "—"

    @admin.display(description="")
    def row_button(self, task: Task) -> str:
        assert self.row_action is not None
        suffix, label = self.row_action
        url = reverse(self._url_name(suffix), args=[task.pk], current_app=self.admin_site.name)
        # The list sits inside the changelist form, which carries the CSRF token.
        return format_html(
            '<button type="submit" class="button" formaction="{}">{}</button>', url, label
        )

    # The actions, in bulk and per row.

    def _url_name(self, suffix: str) -> str:
        opts = self.model._meta
        return f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{suffix}"

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
        if not self.has_change_permission(request):
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

    @admin.action(description="Retry now", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: TaskQuerySet) -> None:
        self._report(request, queryset.retry(), "Queued again, due now:")

    @admin.action(description="Run now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: TaskQuerySet) -> None:
        self._report(request, queryset.run_now(), "Made due now:")


@admin.register(FailedTask)
class FailedTaskAdmin(TaskGroupAdmin):
    group = "failed"
    state = Task.State.FAILED
    row_action = ("retry", "Retry now")
    actions = ["retry"]
    ordering = ("-failed_at", "-pk")


@admin.register(DirtyTask)
class DirtyTaskAdmin(TaskGroupAdmin):
    group = "dirty"
    state = Task.State.STARTED
    row_action = ("retry", "Retry now")
    actions = ["retry"]
    ordering = ("started_at", "pk")


@admin.register(ActiveTask)
class ActiveTaskAdmin(TaskGroupAdmin):
    group = "active"
    state = Task.State.STARTED
    ordering = ("started_at", "pk")
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


@admin.register(FutureTask)
class FutureTaskAdmin(TaskGroupAdmin):
    group = "future"
    state = Task.State.QUEUED
    row_action = ("run_now", "Run now")
    actions = ["run_now"]
    ordering = ("eta", "pk")


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
            for task in Task.objects.started().filter(worker__in=workers).only("name", "worker")
        }

        def counts(by_group: dict[str, metrics.Tally]) -> list[metrics.Tally]:
            return [by_group[group] for group in metrics.GROUPS]

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
            "groups": [
                (
                    group,
                    snapshot[group],
                    reverse(f"{self.admin_site.name}:taskq_{group}task_changelist"),
                )
                for group in metrics.GROUPS
            ],
            "breakdowns": [
                (
                    caption,
                    column,
                    [(name, counts(row)) for name, row in sorted(snapshot[key].items())],
                )
                for caption, column, key in [
                    ("Per task name", "task", "tasks"),
                    ("Per queue", "queue", "queues"),
                ]
            ],
            "queue_rows": queues.overview(counts=snapshot),
            "can_pause": request.user.has_perm("taskq.change_task"),
            "workers": [
                {
                    "worker": worker,
                    "current": current.get(worker.pk),
                    "age": max(0.0, (worker.now - worker.heartbeat).total_seconds()),
                }
                for worker in workers
            ],
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
