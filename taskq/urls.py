"""taskq's URLs: ``path("taskq/", include("taskq.urls"))`` serves ``taskq/metrics``."""

from django.urls import path

from taskq import views

app_name = "taskq"

urlpatterns = [
    path("metrics", views.prometheus_metrics, name="metrics"),
]
