"""The peer: django-safedelete, used the way its documentation shows.

Django is configured in-process (settings.configure) on SQLite with the same PRAGMAs as
recyclebin's store (WAL, synchronous=NORMAL; transactions BEGIN IMMEDIATE). The models are
created with the schema editor (no migrations). The workspace is a SafeDeleteModel with a
partial unique constraint on live names; its one component is a row of its own, as in
recyclebin. Purge writes cleanup tasks and audit records (bulk_create) and hard-deletes in one
transaction, as recyclebin's purge_expired does; the other operations do only what
django-safedelete does (it keeps no audit log).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from django.apps import AppConfig

from common import (
    BATCH,
    COMPONENT_KIND,
    PAGE_SIZE,
    RETENTION_DAYS,
    SUBSCRIPTION,
    CaseResult,
    db_bytes,
    fresh_path,
    group_of,
    name_of,
    ref_of,
    remove_db,
)


class BenchConfig(AppConfig):
    """The app the benchmark's models belong to (installed, so cascades find Component)."""

    name = "impl_django"
    label = "rbbench"
    path = os.path.dirname(os.path.abspath(__file__))


def setup(mode: str, directory: str) -> str | None:
    import django
    from django.conf import settings

    path = None if mode == "memory" else fresh_path(directory, f"django-{mode}")
    options: dict[str, object] = {"transaction_mode": "IMMEDIATE"}
    if path is not None:
        sync = "FULL" if mode == "full" else "NORMAL"
        options["init_command"] = f"PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}"
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=["safedelete", "impl_django.BenchConfig"],
        DATABASES={"default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path or "file::memory:",
            "OPTIONS": options,
        }},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    return path


def define_models():  # type: ignore[no-untyped-def]
    from django.db import models
    from django.db.models import Q
    from safedelete.models import SOFT_DELETE, SafeDeleteModel

    class Workspace(SafeDeleteModel):
        _safedelete_policy = SOFT_DELETE
        tenant = models.CharField(max_length=64)
        group = models.CharField(max_length=90)
        name = models.CharField(max_length=64)
        retention_days = models.PositiveSmallIntegerField(default=RETENTION_DAYS)
        created_at = models.DateTimeField(auto_now_add=True)

        class Meta:
            app_label = "rbbench"
            constraints = [
                models.UniqueConstraint(
                    fields=["tenant", "group", "name"],
                    condition=Q(deleted__isnull=True),
                    name="workspace_live_name_unique",
                ),
            ]
            indexes = [
                # The recycle-bin listing: newest deletion first, per tenant.
                models.Index(fields=["tenant", "-deleted", "-id"], name="workspace_deleted_newest",
                             condition=Q(deleted__isnull=False)),
                models.Index(fields=["tenant", "group", "name"], name="workspace_name"),
            ]

    class Component(models.Model):
        workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="components")
        kind = models.CharField(max_length=64)
        ref = models.CharField(max_length=255)
        standalone = models.BooleanField(default=False)

        class Meta:
            app_label = "rbbench"

    class AuditRecord(models.Model):
        at = models.DateTimeField()
        action = models.CharField(max_length=16)
        tenant = models.CharField(max_length=64)
        group = models.CharField(max_length=90)
        name = models.CharField(max_length=64)
        outcome = models.CharField(max_length=64)
        workspace_id = models.CharField(max_length=64)

        class Meta:
            app_label = "rbbench"

    class CleanupTask(models.Model):
        kind = models.CharField(max_length=64)
        ref = models.CharField(max_length=255)
        workspace_id = models.CharField(max_length=64)
        created_at = models.DateTimeField()
        completed_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "rbbench"

    return Workspace, Component, AuditRecord, CleanupTask


def run(mode: str, n: int, pages: int, ops: set[str], directory: str) -> CaseResult:
    path = setup(mode, directory)
    from django.db import connection, transaction
    from django.db.models import Q
    from django.utils import timezone
    from safedelete.models import HARD_DELETE

    Workspace, Component, AuditRecord, CleanupTask = define_models()
    with connection.schema_editor() as editor:
        for model in (Workspace, Component, AuditRecord, CleanupTask):
            editor.create_model(model)

    result = CaseResult("django", mode, n)
    workspaces: list = []

    if "create" in ops:
        with result.timed("create", n):
            for i in range(n):
                with transaction.atomic():
                    workspace = Workspace.objects.create(tenant=SUBSCRIPTION, group=group_of(i), name=name_of(i))
                    Component.objects.create(workspace=workspace, kind=COMPONENT_KIND, ref=ref_of(i))
                workspaces.append(workspace)

    if "delete" in ops:
        with result.timed("delete", n):
            for workspace in workspaces:
                workspace.delete()

    if "list" in ops:
        retention = timedelta(days=RETENTION_DAYS)
        with result.timed("list", pages) as record:
            cursor: tuple[datetime, int] | None = None
            rows = 0
            for _ in range(pages):
                query = Workspace.deleted_objects.filter(tenant=SUBSCRIPTION,
                                                         deleted__gt=timezone.now() - retention)
                if cursor is not None:
                    at, last_id = cursor
                    # Keyset: a range the index can seek to, then the tie-break.
                    query = query.filter(Q(deleted__lt=at) | Q(deleted=at, id__lt=last_id),
                                         deleted__lte=at)
                items = list(query.order_by("-deleted", "-id")[:PAGE_SIZE + 1])
                if len(items) > PAGE_SIZE:
                    del items[PAGE_SIZE:]
                    cursor = (items[-1].deleted, items[-1].id)
                else:
                    cursor = None  # the last page: start over
                rows += len(items)
            record["rows"] = rows

    if "recover" in ops:
        with result.timed("recover", (n + 1) // 2):
            for i in range(0, n, 2):
                Workspace.deleted_objects.get(tenant=SUBSCRIPTION, group=group_of(i), name=name_of(i)).undelete()

    if "purge" in ops:
        # recyclebin's clock is moved 15 days on; Django reads the real clock, so the
        # cutoff moves instead.
        now = timezone.now() + timedelta(days=RETENTION_DAYS + 1)
        cutoff = now - timedelta(days=RETENTION_DAYS)
        with result.timed("purge") as record:
            with transaction.atomic():
                expired = Workspace.all_objects.filter(deleted__isnull=False, deleted__lte=cutoff)
                rows = list(expired.values_list("id", "tenant", "group", "name"))
                components = Component.objects.filter(workspace__deleted__isnull=False,
                                                      workspace__deleted__lte=cutoff)
                CleanupTask.objects.bulk_create(
                    CleanupTask(kind=kind, ref=ref, workspace_id=str(workspace_id), created_at=now)
                    for workspace_id, kind, ref in components.values_list("workspace_id", "kind", "ref"))
                AuditRecord.objects.bulk_create(
                    AuditRecord(at=now, action="expire", tenant=tenant, group=group, name=name,
                                outcome="ok", workspace_id=str(workspace_id))
                    for workspace_id, tenant, group, name in rows)
                expired.delete(force_policy=HARD_DELETE)
            record["count"] = len(rows)

    if "delete_many" in ops:
        live = [w.id for w in workspaces[0::2]]
        with result.timed("delete_many", len(live)):
            for start in range(0, len(live), BATCH):
                with transaction.atomic():
                    Workspace.objects.filter(pk__in=live[start:start + BATCH]).delete()

    if path is None:
        with connection.cursor() as cursor_:
            cursor_.execute("PRAGMA page_count")
            page_count = cursor_.fetchone()[0]
            cursor_.execute("PRAGMA page_size")
            page_size = cursor_.fetchone()[0]
        result.extra["db_bytes"] = page_count * page_size
    else:
        connection.close()
        result.extra["db_bytes"] = db_bytes(path)
        remove_db(path)
    return result
