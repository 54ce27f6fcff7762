"""The Django admin for tasks: read-only lists to watch the queue."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from taskq.models import Task, Worker


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "queue", "priority", "state", "eta", "retries", "worker")
    list_filter = ("state", "queue", "name")
    search_fields = ("name",)
    ordering = ("-id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("ident", "host", "pid", "queues", "started_at", "heartbeat")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
