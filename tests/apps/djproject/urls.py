from __future__ import annotations

from django.urls import path

from djproject import views

urlpatterns = [
    path("", views.index),
    path("echo", views.echo),
    path("form", views.form),
    path("json", views.json_body),
    path("upload", views.upload),
    path("raw", views.raw),
    path("stream", views.stream),
    path("redirect", views.go_elsewhere),
    path("boom", views.boom),
]
