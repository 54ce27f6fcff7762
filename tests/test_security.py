"""Only registered tasks run, arguments are data, and names never become SQL."""

import pytest

from taskq.enqueue import Call, enqueue
from taskq.models import Task
from taskq.worker import Worker
from test_matrix.testapp.tasks import record

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = [
    "x'); DROP TABLE taskq_task; --",
    'q" OR 1=1 --',
    "%s%s%s",
    "ünï\\côdé\x00?",
]


@pytest.mark.parametrize("queue", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_queue_name_is_only_ever_a_value(queue, monkeypatch, tmp_path, strategy_cls):
    if "\x00" in queue:
        queue = queue.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    monkeypatch.setenv("TASKQ_TEST_RECORD", str(tmp_path / "record.txt"))
    monkeypatch.setattr("taskq.worker.get_strategy", lambda using: strategy_cls(using))
    record.apply_async(("hostile",), queue=queue)
    record.apply_async(("other",), queue="other")
    Worker([queue], burst=True).run(handle_signals=False)
    assert (tmp_path / "record.txt").read_text() == "hostile\n"
    assert list(Task.objects.values_list("queue", flat=True)) == ["other"]


@pytest.mark.parametrize("name", HOSTILE[:3], ids=range(3))
def test_a_hostile_task_name_fails_as_unregistered(name):
    enqueue(Call(name))
    Worker(["default"], burst=True).run(handle_signals=False)
    (task,) = Task.objects.all()
    assert (task.state, task.error) == (Task.State.FAILED, f"unregistered task {name!r}")


def test_no_module_of_taskq_imports_pickle():
    import pathlib
    import re

    import taskq

    importing = re.compile(r"^\s*(import|from)\s+(c?pickle|marshal|shelve|dill)\b", re.M)
    sources = pathlib.Path(taskq.__file__).parent.rglob("*.py")
    assert not [path for path in sources if importing.search(path.read_text())]
