"""A task's arguments have a size limit at enqueue, and stored errors one too."""

import io
import re

import django
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings

from taskq.bounds import MAX_ERROR_BYTES
from taskq.conf import settings
from taskq.enqueue import Call, enqueue, enqueue_many
from taskq.models import Task
from test_matrix.testapp.tasks import record

pytestmark = pytest.mark.django_db

NAME = "test_matrix.testapp.tasks.record"
MESSAGE = re.escape("take {} bytes as JSON, more than TASKQ_MAX_ARGUMENTS_SIZE ({} bytes)")
MESSAGE = MESSAGE.replace(re.escape("{}"), "{}")


def test_the_default_limit_is_a_mebibyte_and_delay_refuses_more():
    assert settings.MAX_ARGUMENTS_SIZE == 1024 * 1024
    big = "x" * (1024 * 1024)
    with pytest.raises(ValueError, match=r"record take 1048582 bytes as JSON, more than"):
        record.delay(big)
    assert not Task.objects.exists()


@override_settings(TASKQ_MAX_ARGUMENTS_SIZE=100)
def test_every_way_in_refuses_arguments_over_the_limit_and_writes_nothing():
    just_fits = "x" * (100 - len('[""]') - len("{}"))
    record.delay(just_fits)  # exactly at the limit: accepted
    assert Task.objects.count() == 1
    with pytest.raises(ValueError, match=MESSAGE.format(101, 100)):
        record.delay(just_fits + "y")
    with pytest.raises(ValueError, match=MESSAGE.format(104, 100)):
        record.apply_async((), {"key": "b" * 92})
    with pytest.raises(ValueError, match=MESSAGE.format(101, 100)):
        enqueue(Call(NAME, args=[just_fits + "y"]))
    with pytest.raises(ValueError, match=MESSAGE.format(101, 100)):
        enqueue_many([Call(NAME, args=[1]), Call(NAME, args=[just_fits + "y"])])
    with pytest.raises(CommandError, match=MESSAGE.format(101, 100)):
        call_command("taskq_enqueue", NAME, "--args", f'["{just_fits}y"]', stdout=io.StringIO())
    assert Task.objects.count() == 1


@pytest.mark.skipif(django.VERSION < (6, 0), reason="Django's Tasks framework needs Django 6")
@override_settings(TASKQ_MAX_ARGUMENTS_SIZE=100)
def test_django_tasks_refuse_arguments_over_the_limit():
    from test_matrix.testapp.django_tasks import record as django_record

    with pytest.raises(ValueError, match="more than TASKQ_MAX_ARGUMENTS_SIZE"):
        django_record.enqueue("x" * 200)
    assert not Task.objects.exists()


@pytest.mark.parametrize("value", [0, -1, 1.5, "1MB", True])
def test_a_malformed_limit_is_named(value):
    with override_settings(TASKQ_MAX_ARGUMENTS_SIZE=value):
        with pytest.raises(ImproperlyConfigured, match="TASKQ_MAX_ARGUMENTS_SIZE must be a"):
            _ = settings.MAX_ARGUMENTS_SIZE


def test_an_error_written_by_a_requeue_is_bounded():
    result = record.delay(1)
    huge = "Traceback (most recent call last):\n" + "é" * (10 * 1024 * 1024) + "\nValueError: x"
    assert Task.objects.filter(pk=result.id).requeue(error=huge) == 1
    stored = Task.objects.get(pk=result.id).error
    assert len(stored.encode()) <= MAX_ERROR_BYTES
    assert stored.startswith("Traceback") and stored.endswith("ValueError: x")
    assert "bytes cut by taskq" in stored
