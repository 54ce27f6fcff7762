#!/usr/bin/env python3
"""taskq's demo in one command, on a fresh clone: ``python3 demo/run.py``.

It uses the standard library only until it has a virtualenv of its own
(``.venv-demo/`` at the root of the repository, taskq installed in it in editable
mode), then runs again with that virtualenv's python. So a machine needs python3
(3.10+) and pip, nothing else.

The demo migrates a SQLite file (``demo/db.sqlite3``), creates the admin user
``admin``/``admin``, queues sample tasks with the Celery API, runs two real worker
processes on that file until nothing is due, and prints the metrics. Run it again at
will: it reuses the database and the virtualenv.

``python3 demo/run.py <command> [args]`` runs any manage.py command of the demo
project instead, for example ``python3 demo/run.py runserver`` for the admin.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

DEMO = Path(__file__).resolve().parent
REPO = DEMO.parent
VENV = REPO / ".venv-demo"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
MANAGE = DEMO / "manage.py"
#: Written once taskq is installed, so an interrupted install is redone next time.
INSTALLED_MARKER = VENV / "taskq-demo-installed"
WORKERS = 2
QUEUES = "default,mail"


def main(argv: list[str]) -> None:
    """Get into the demo's virtualenv, then run a manage.py command or the demo."""
    if not running_in_venv():
        ensure_venv()
    if argv:
        os.execv(PYTHON, [str(PYTHON), str(MANAGE), *argv])
    if not running_in_venv():
        os.execv(PYTHON, [str(PYTHON), str(Path(__file__).resolve())])
    run_demo()


# Bootstrap: standard library only --------------------------------------------------


def running_in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv() -> None:
    """Create ``.venv-demo`` and install taskq into it, unless an earlier run did."""
    if INSTALLED_MARKER.exists():
        return
    print(f"Creating {VENV} and installing taskq into it (first run only)...", flush=True)
    # Some Linux distributions ship python3 without ensurepip; then the virtualenv is
    # made without pip and this python's pip installs into it.
    has_ensurepip = importlib.util.find_spec("ensurepip") is not None
    venv.create(VENV, with_pip=has_ensurepip)
    if has_ensurepip:
        pip = [str(PYTHON), "-m", "pip"]
    else:
        pip = [sys.executable, "-m", "pip", "--python", str(PYTHON)]
    subprocess.run(
        [*pip, "install", "--quiet", "--disable-pip-version-check", "--editable", str(REPO)],
        check=True,
    )
    INSTALLED_MARKER.touch()


# The demo: runs inside the virtualenv ------------------------------------------------


def run_demo() -> None:
    """Migrate, queue the sample tasks, run two workers, print metrics and next steps."""
    sys.path.insert(0, str(DEMO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    import django

    django.setup()
    print(f"== Database: {DEMO / 'db.sqlite3'} (SQLite file shared by all processes)")
    migrate()
    ensure_admin_user()
    enqueue_samples()
    run_workers()
    show_metrics()
    show_next_steps()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    print("== Migrated.")


def ensure_admin_user() -> None:
    """Create the superuser admin/admin once; a re-run finds it and leaves it alone."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    if users.filter(username="admin").exists():
        print("== Admin user 'admin' already exists.")
    else:
        users.create_superuser("admin", "admin@example.com", "admin")
        print("== Created the admin user: username 'admin', password 'admin'.")


def enqueue_samples() -> None:
    """Queue the sample tasks in one transaction, as application code would."""
    from datetime import date, timedelta
    from decimal import Decimal

    from django.db import transaction
    from shop.tasks import charge_card, send_invoice, send_reminder

    due = date.today() + timedelta(days=30)
    with transaction.atomic():
        for number in range(1, 11):
            send_invoice.delay(number, Decimal("19.90") * number, due)
        for number in range(11, 21):
            send_invoice.s(number, Decimal("19.90") * number, due).set(queue="mail").apply_async()
        charge_card.apply_async((42,), priority=5)
        reminder = send_reminder.apply_async(("ada@example.com",), countdown=3600)
    print(
        "== Queued 20 send_invoice (10 on 'default' with .delay, 10 on 'mail' with "
        ".s().set(queue='mail')), 1 charge_card that always fails, and "
        f"send_reminder[{reminder.id}] due in an hour (countdown=3600)."
    )

    # The task row is written in the caller's transaction: a rollback drops it too.
    try:
        with transaction.atomic():
            send_invoice.delay(999, Decimal("1.00"), due)
            raise RuntimeError("order 999 failed validation")
    except RuntimeError:
        print("== Queued invoice #999 in a transaction that rolled back: it was never queued.")


def run_workers() -> None:
    """Run two real worker processes on the shared database file and wait for both.

    ``--burst`` makes each one exit as soon as nothing is due, so the demo ends; the
    reminder due in an hour stays queued.
    """
    command = [sys.executable, str(MANAGE), "taskq_worker", "--burst", "-Q", QUEUES]
    print(f"== Starting {WORKERS} workers: manage.py taskq_worker --burst -Q {QUEUES}", flush=True)
    workers = [subprocess.Popen(command) for _ in range(WORKERS)]
    exit_codes = [worker.wait() for worker in workers]
    if any(exit_codes):
        sys.exit(f"A worker failed (exit codes {exit_codes}); see its log above.")
    print("== Both workers are done.")


def show_metrics() -> None:
    from taskq.metrics import snapshot

    print("== taskq.metrics.snapshot() (failed and future tasks stay, so re-runs add up):")
    print(json.dumps(snapshot(), indent=2))


def show_next_steps() -> None:
    print(
        "\n"
        "The failed charge_card task (with its traceback) and the future reminder are in the\n"
        "admin. From the repository root, run:\n"
        "\n"
        "    python3 demo/run.py runserver\n"
        "    (or: .venv-demo/bin/python demo/manage.py runserver)\n"
        "\n"
        "then open http://127.0.0.1:8000/admin/ and log in as admin / admin.\n"
        "Any manage.py command works the same way, e.g. python3 demo/run.py taskq_worker -Q "
        f"{QUEUES}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
