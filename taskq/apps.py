from django.apps import AppConfig


class TaskqConfig(AppConfig):
    name = "taskq"
    verbose_name = "Task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from taskq import checks  # noqa: F401  (registers the system checks)
        from taskq.backends import prepare_connection

        connection_created.connect(prepare_connection, dispatch_uid="taskq.prepare_connection")
