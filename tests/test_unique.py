"""Unique tasks: one row per key while a task holds it, whoever races for it."""

import subprocess
import sys
import threading

import pytest
from django.db import connection, connections, transaction

from taskq import unique
from taskq.enqueue import Call, enqueue, enqueue_many
from taskq.models import Task
from test_matrix.testapp.tasks import fail, fail_and_retry_later, record, unique_record

pytestmark = pytest.mark.django_db(transaction=True)

#: A process of the race: connect, say "ready", wait for "go" on stdin, then enqueue.
RACER = """
import sys, django
django.setup()
from django.db import connection
from test_matrix.testapp.tasks import record
connection.ensure_connection()
print("ready", flush=True)
sys.stdin.readline()
result = record.apply_async(("race",), unique_key="invoice-42")
print(result.id, result.created, flush=True)
"""


def holders(key):
    return Task.objects.filter(unique_key_hash=unique.digest(key))


def test_eight_processes_racing_on_one_key_write_one_row(workers):
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER],
            env=workers.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for racer in racers:  # the barrier: every process is connected before any enqueues
        assert racer.stdout.readline() == "ready\n", racer.stderr.read()
    for racer in racers:
        racer.stdin.write("go\n")
        racer.stdin.flush()
    answers = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        task_id, created = out.split()
        answers.append((int(task_id), created == "True"))
    (task,) = Task.objects.all()
    print(f"race on {connection.vendor}: {Task.objects.count()} row(s), answers {answers}")
    assert {task_id for task_id, _ in answers} == {task.pk}
    assert sum(created for _, created in answers) == 1
    assert task.unique_key == "invoice-42"


def test_a_held_key_writes_nothing_and_answers_with_the_holder():
    first = record.apply_async(("a",), unique_key="k")
    second = record.apply_async(("b",), unique_key="k", countdown=60, queue="other")
    assert first.created is True and second.created is False
    assert second.id == first.id
    (task,) = Task.objects.all()
    assert task.pk == first.id and task.queue == "default"
    assert record.apply_async(("c",), unique_key="other-key").created is True
    # Keys compare byte for byte on every database, whatever the column's collation.
    assert record.apply_async(("d",), unique_key="K").created is True
    assert record.apply_async(("e",), unique_key="k ").created is True
    assert Task.objects.count() == 4
    assert record.delay("no key").created is True  # NULLs never collide
    assert record.delay("no key").created is True


def test_unique_true_keys_on_the_name_and_the_arguments():
    first = unique_record.apply_async((1,), {"extra": {"b": 1, "a": 2}})
    again = unique_record.apply_async([1], {"extra": {"a": 2, "b": 1}})
    other = unique_record.delay(2)
    assert first.created and not again.created and again.id == first.id
    assert other.created and other.id != first.id
    task = Task.objects.get(pk=first.id)
    assert task.unique_key == (
        'test_matrix.testapp.tasks.unique_record{"args":[1],"kwargs":{"extra":{"a":2,"b":1}}}'
    )
    # An explicit key wins over the derived one.
    assert unique_record.apply_async((1,), unique_key="mine").created is True


def test_a_refused_insert_leaves_the_callers_transaction_usable():
    with transaction.atomic():
        first = record.apply_async(("a",), unique_key="k")
        second = record.apply_async(("b",), unique_key="k")
        third = record.delay("after")
    assert not second.created and second.id == first.id
    assert set(Task.objects.values_list("pk", flat=True)) == {first.id, third.id}


def test_enqueue_many_writes_each_key_once():
    record.apply_async(("held",), unique_key="held")
    written = enqueue_many(
        [
            Call(record.name, args=[1]),
            Call(record.name, args=[2], unique_key="new"),
            Call(record.name, args=[3], unique_key="new"),
            Call(record.name, args=[4], unique_key="held"),
            Call(unique_record.name, args=[5], unique_key=True),
            Call(unique_record.name, args=[5], unique_key=True),
        ]
    )
    assert written == 3
    assert Task.objects.count() == 4
    assert holders("new").get().args == "[2]"


def test_a_bad_key_is_refused_before_anything_is_written():
    for bad, error in ((42, TypeError), ("", ValueError), ("x" * 1001, ValueError)):
        with pytest.raises(error, match="unique_key"):
            record.apply_async((1,), unique_key=bad)
        with pytest.raises(error, match="unique_key"):
            enqueue_many([Call(record.name), Call(record.name, unique_key=bad)])
    assert not Task.objects.exists()


def run_in_thread(target):
    """Run ``target`` on its own connection; return the thread and where it answers."""
    answer = {}

    def run():
        try:
            answer["value"] = target()
        except BaseException as error:  # reported by the test
            answer["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answer


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_second_insert_waits_for_the_first_uncommitted_one(outcome):
    # The first inserter's transaction is open: the second waits for it, then is refused
    # if it committed, or written if it rolled back. Never two rows, never a wrong id.
    inserted, finish = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            task = enqueue(Call(record.name, args=["first"], unique_key="k"))
            inserted.set()
            finish.wait(30)
            if outcome == "rollback":
                transaction.set_rollback(True)
        return task.pk

    first_thread, first_answer = run_in_thread(first)
    assert inserted.wait(30)
    second_thread, second_answer = run_in_thread(
        lambda: record.apply_async(("second",), unique_key="k")
    )
    second_thread.join(0.5)
    assert second_thread.is_alive(), "the second insert did not wait for the first"
    finish.set()
    first_thread.join(30)
    second_thread.join(30)
    assert "error" not in first_answer and "error" not in second_answer, (
        first_answer,
        second_answer,
    )
    second = second_answer["value"]
    (task,) = Task.objects.all()
    assert task.pk == second.id
    if outcome == "commit":
        assert not second.created and second.id == first_answer["value"]
    else:
        assert second.created and task.args == '["second"]'


@pytest.mark.skipif(
    not connection.features.has_select_for_update,
    reason="without row locks, no other writer commits while a write transaction is open",
)
def test_a_key_committed_after_the_callers_snapshot_is_found():
    # Inside a transaction that has read already (InnoDB's REPEATABLE READ snapshot),
    # the holder committed since must still be found, not taken for a finished task.
    with transaction.atomic():
        assert not Task.objects.exists()  # takes the snapshot
        thread, answer = run_in_thread(lambda: record.apply_async(("other",), unique_key="k").id)
        thread.join(30)
        assert "value" in answer, answer
        result = record.apply_async(("mine",), unique_key="k")
    assert not result.created and result.id == answer["value"]
    assert Task.objects.count() == 1


def test_success_frees_the_key(workers):
    first = record.apply_async(("one",), unique_key="k")
    assert workers.run("--burst").returncode == 0
    assert workers.records() == ["one"]
    assert not Task.objects.exists()
    again = record.apply_async(("two",), unique_key="k")
    assert again.created and again.id != first.id


def test_failure_frees_the_key_and_the_admin_still_sees_it(workers):
    first = fail.apply_async(("boom",), unique_key="k")
    assert workers.run("--burst").returncode == 0
    failed = Task.objects.get(pk=first.id)
    assert failed.state == Task.State.FAILED
    assert failed.unique_key == "k" and failed.unique_key_hash is None
    again = record.apply_async(("two",), unique_key="k")
    assert again.created and again.id != first.id
    # Retried from the admin, the failed task runs without its key: the new one holds it.
    assert Task.objects.filter(pk=first.id).retry() == 1
    assert holders("k").get().pk == again.id


def test_retries_keep_the_key(workers):
    first = fail_and_retry_later.apply_async(("r",), unique_key="k")
    assert workers.run("--burst").returncode == 0
    assert workers.records() == ["attempt r"]
    task = Task.objects.get(pk=first.id)
    assert task.state == Task.State.QUEUED and task.retries == 1
    again = fail_and_retry_later.apply_async(("r",), unique_key="k")
    assert not again.created and again.id == first.id
    assert Task.objects.count() == 1
