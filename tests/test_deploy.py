"""The deployment recipes in ``deploy/`` work as shipped (templated only by paths).

supervisord really runs here: N workers register, a stop lets each finish its task and
exit 0. The systemd unit goes through ``systemd-analyze verify``; the Kubernetes
Deployment is validated against Kubernetes' own schema (kubernetes-validate); KEDA's
ScaledObject, a custom resource without a schema there, and the Grafana dashboard are
checked field by field against what taskq really exports. Nothing here runs a cluster.
"""

import configparser
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.db import DatabaseError, connection

from taskq import metrics, prometheus
from taskq.models import Task
from taskq.models import Worker as WorkerRow
from test_matrix.testapp.tasks import slow

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
#: The longest task the shipped recipes are written for, in seconds.
LONGEST_TASK = 600

yaml = pytest.importorskip("yaml")


def exported_metric_names():
    """Every metric family ``taskq_stats --prometheus`` and the metrics view write (the
    table health gauges too, which only a database that keeps dead rows fills)."""
    snapshot = {**metrics.snapshot(), "dead_rows": 0, "oldest_transaction_age": 0.0}
    text = prometheus.render(snapshot)
    return set(re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE))


def metric_names_in(expr):
    return set(re.findall(r"\btaskq_\w+", expr))


# supervisord --------------------------------------------------------------------------


def supervisor_program():
    parser = configparser.RawConfigParser()
    parser.read(DEPLOY / "supervisor" / "supervisord.conf")
    return parser["program:taskq-worker"]


def test_supervisord_runs_n_workers_and_a_stop_lets_each_finish_its_task(workers, tmp_path):
    pytest.importorskip("supervisor")
    supervisord = Path(sys.executable).with_name("supervisord")
    if not supervisord.exists():
        pytest.skip("supervisord is not installed beside this Python")
    count = 3
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = workers.env(
        TASKQ_APP_DIR=str(ROOT),
        TASKQ_PYTHON=sys.executable,
        TASKQ_RUN_DIR=str(run_dir),
        TASKQ_WORKERS=str(count),
    )
    process = subprocess.Popen(
        [str(supervisord), "--nodaemon", "-c", str(DEPLOY / "supervisor" / "supervisord.conf")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = run_dir / "supervisord.log"
    try:
        deadline = time.monotonic() + 120
        while WorkerRow.objects.count() < count:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{WorkerRow.objects.count()} workers\n" + (
                log.read_text() if log.exists() else ""
            )
            time.sleep(0.1)
        for key in range(count):
            slow.delay(key, 4)
        for key in range(count):
            workers.wait_for_record(f"start {key}", timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Every worker finished its task, then exited 0; supervisord said so.
    assert sorted(workers.records()) == sorted(
        [f"start {key}" for key in range(count)] + [f"end {key}" for key in range(count)]
    )
    stopped = re.findall(r"stopped: (taskq-worker_\d\d) \((.*?)\)", log.read_text())
    assert sorted(stopped) == [(f"taskq-worker_{n:02d}", "exit status 0") for n in range(count)]
    assert Task.objects.count() == 0 and WorkerRow.objects.count() == 0


def test_supervisord_waits_long_enough_and_signals_the_worker_itself():
    program = supervisor_program()
    assert program["stopsignal"] == "TERM"
    assert int(program["stopwaitsecs"]) >= LONGEST_TASK
    assert program["command"].split()[1:] == ["-m", "django", "taskq_worker"]
    assert program["autorestart"] == "true"


# systemd -----------------------------------------------------------------------------


def test_the_systemd_unit_verifies_and_stops_gracefully(tmp_path):
    unit = (DEPLOY / "systemd" / "taskq-worker@.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["KillSignal"] == "SIGTERM" and settings["KillMode"] == "mixed"
    assert int(settings["TimeoutStopSec"]) >= LONGEST_TASK
    assert settings["Restart"] == "always"
    assert settings["ExecStart"].endswith("manage.py taskq_worker")
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    rendered = unit.replace("/srv/shop/venv/bin/python", sys.executable).replace(
        "/srv/shop", str(ROOT)
    )
    (tmp_path / "taskq-worker@.service").write_text(rendered)
    done = subprocess.run(
        [verify, "verify", str(tmp_path / "taskq-worker@1.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # Unknown keys and bad values are only warnings to systemd: none may be about the unit.
    assert "taskq-worker@" not in done.stdout + done.stderr


# Kubernetes and KEDA ----------------------------------------------------------------


def load_yaml(name):
    return yaml.safe_load((DEPLOY / "kubernetes" / name).read_text())


def test_the_deployment_is_valid_kubernetes_and_stops_gracefully():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = load_yaml("worker-deployment.yaml")
    version = kubernetes_validate.utils.latest_version()
    kubernetes_validate.validate(deployment, version, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > LONGEST_TASK
    (container,) = pod["containers"]
    # Exec form, the worker itself: SIGTERM reaches it, not a shell.
    assert container["command"][:3] == ["python", "manage.py", "taskq_worker"]
    probe = container["livenessProbe"]["exec"]["command"]
    assert probe == ["python", "manage.py", "taskq_alive"] and "taskq_alive" in get_commands()


def test_a_schema_violation_would_be_caught():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = load_yaml("worker-deployment.yaml")
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "ten minutes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            deployment, kubernetes_validate.utils.latest_version(), strict=True
        )


@pytest.mark.django_db
def test_keda_scales_the_deployment_on_a_metric_taskq_exports():
    deployment = load_yaml("worker-deployment.yaml")
    scaled = load_yaml("keda-scaledobject.yaml")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledObject"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    assert metric_names_in(query) == {"taskq_tasks"} <= exported_metric_names()
    assert 'state="pending"' in query and float(trigger["metadata"]["threshold"]) > 0


# KEDA sends the query on its own, outside any transaction (now() is a transaction's start).
@pytest.mark.django_db(transaction=True)
def test_keda_s_postgresql_query_counts_what_the_metrics_call_pending():
    deployment = load_yaml("worker-deployment.yaml")
    scaled = load_yaml("keda-scaledobject-postgresql.yaml")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql" and float(trigger["metadata"]["targetQueryValue"]) > 0
    assert f"FROM {Task._meta.db_table} " in trigger["metadata"]["query"]
    if not connection.features.supports_timezones:
        pytest.skip("the query compares eta with now(): right only where timestamps keep a zone")
    slow.delay("due", 0)
    slow.delay("due too", 0)
    slow.apply_async(("later", 0), countdown=3600)
    try:
        with connection.cursor() as cursor:
            cursor.execute(trigger["metadata"]["query"])
            (count,) = cursor.fetchone()
    except DatabaseError as error:
        pytest.skip(f"this database cannot run the PostgreSQL query: {error}")
    assert count == metrics.snapshot()["pending"] == 2


# Grafana -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_grafana_dashboard_queries_only_metrics_taskq_exports():
    dashboard = json.loads((DEPLOY / "grafana" / "taskq-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set().union(*(metric_names_in(expr) for expr in exprs))
    assert used and used <= exported_metric_names()
    # Every metric taskq exports has a panel.
    assert used == exported_metric_names()
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


# The liveness probe --------------------------------------------------------------------


def probe(workers, *args):
    return subprocess.run(
        [sys.executable, "-m", "django", "taskq_alive", *args],
        cwd=ROOT,
        env=workers.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_liveness_probe_fails_when_this_host_s_worker_stops_beating(workers, wait_until):
    assert probe(workers).returncode == 1  # no worker yet
    worker = workers.start()
    workers.wait_until_registered(worker)
    ident = WorkerRow.objects.get(pid=worker.pid).ident
    alive = probe(workers)
    assert (alive.returncode, alive.stdout.strip()) == (0, f"alive: worker {ident}")
    worker.send_signal(signal.SIGSTOP)  # the heartbeat thread stops with it
    try:
        wait_until(lambda: probe(workers).returncode == 1, timeout=60)
        dead = probe(workers)
        assert dead.stdout.strip() == (
            f"not alive: worker {ident} has not beaten its heartbeat for 3s"
        )
    finally:
        worker.send_signal(signal.SIGCONT)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    nobody = probe(workers, "--host", "no-such-host")
    assert nobody.returncode == 1
    assert nobody.stdout.strip() == "not alive: no worker of host 'no-such-host' is registered"
