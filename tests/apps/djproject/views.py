"""Views of the test Django project: the same routes as tests/apps/flask_app.py."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("django ok\n", content_type="text/plain")


@require_GET
def echo(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "args": {k: request.GET.getlist(k) for k in request.GET},
            "path": request.path,
            "raw_query": request.META.get("QUERY_STRING", ""),
            "pid": os.getpid(),
        }
    )


@csrf_exempt
@require_POST
def form(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"form": {k: request.POST.getlist(k) for k in request.POST}})


@csrf_exempt
@require_POST
def json_body(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"received": json.loads(request.body), "content_type": request.content_type}
    )


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    f = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in f.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse(
        {
            "filename": f.name,
            "size": size,
            "sha256": digest.hexdigest(),
            "note": request.POST.get("note"),
        }
    )


@csrf_exempt
@require_POST
def raw(request: HttpRequest) -> JsonResponse:
    """The request body as the app sees it (used for chunked request bodies).

    Django reads request.body only up to CONTENT_LENGTH (0 when absent), so a chunked body —
    which has no Content-Length — is read from the server's wsgi.input directly, until EOF.
    That relies on wsgid's wsgi.input ending exactly where the chunked body ends.
    """
    if "CONTENT_LENGTH" in request.META and request.META["CONTENT_LENGTH"] != "":
        data = request.body
    else:
        stream = request.META["wsgi.input"]
        parts = []
        while chunk := stream.read(65536):
            parts.append(chunk)
        data = b"".join(parts)
    return JsonResponse(
        {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "transfer_encoding": request.headers.get("Transfer-Encoding", ""),
        }
    )


@require_GET
def stream(request: HttpRequest) -> StreamingHttpResponse:
    n = int(request.GET.get("n", "5"))

    def generate() -> Iterator[str]:
        for i in range(n):
            yield f"chunk {i}\n"

    return StreamingHttpResponse(generate(), content_type="text/plain")


@require_GET
def go_elsewhere(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect("/echo?from=redirect")


@require_GET
def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("django boom marker")
