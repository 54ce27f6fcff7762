"""Only the admin: it is taskq's monitoring tool."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
