"""REST area: the operator routes, for the platform only (deletable workspaces and purge by
id, purge expired, the cleanup outbox, the audit log)."""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

import recyclebin as rb
from recyclebin.auth import require_platform
from recyclebin.rest.common import RouterContext, Subscription
from recyclebin.rest.errors import E403, E404_WS, E409, ApiError, e404, error_doc, responses
from recyclebin.wire import (
    AuditRecordModel,
    CleanupClaimBody,
    CleanupFailBody,
    CleanupTaskModel,
    DeletableWorkspaceModel,
    DeleteResultModel,
    PurgeReportModel,
)

__all__ = ["add_routes"]


def _no_such_task(task_id: int) -> ApiError:
    return ApiError(404, "cleanup_task_not_found",
                    f"no cleanup task {task_id}; see GET /cleanupTasks")


def add_routes(routes: APIRouter, context: RouterContext) -> None:
    """Adds the operator routes over ``context.engine`` to ``routes``."""
    Caller = Annotated[rb.Principal | None, Depends(context.authenticate)]

    @routes.get("/subscriptions/{subscription_id}/deletableWorkspaces",
                response_model=list[DeletableWorkspaceModel], tags=context.tagged("operations"),
                summary="List workspaces an operator may purge (platform only)")
    def list_deletable(subscription_id: Subscription,
                       caller: Caller) -> list[DeletableWorkspaceModel]:
        """`deletion_planned` (past their date under `on_expiry: hold`) and `orphaned`
        workspaces: kind, id and date, never names."""
        require_platform(caller, "listing deletable workspaces")
        return [DeletableWorkspaceModel.model_validate(d)
                for d in context.engine.list_deletable(subscription_id)]

    @routes.delete("/subscriptions/{subscription_id}/deletableWorkspaces/{workspace_id}",
                   response_model=DeleteResultModel, tags=context.tagged("operations"),
                   summary="Purge one deletable workspace by id",
                   responses=responses(E404_WS, E409))
    def purge_deletable(subscription_id: Subscription,
                        workspace_id: Annotated[str, Path(min_length=1, max_length=256)],
                        caller: Caller) -> DeleteResultModel:
        """Only a workspace that `deletableWorkspaces` lists for this subscription; the
        result's `cleanup` lists every reference to remove from storage."""
        require_platform(caller, "purging by id")
        if not any(d.workspace_id == workspace_id for d in context.engine.list_deletable(subscription_id)):
            raise ApiError(404, "workspace_not_found",
                           f"no deletable workspace {workspace_id!r} in subscription "
                           f"{subscription_id!r}; see GET .../deletableWorkspaces")
        return DeleteResultModel.model_validate(context.engine.purge_by_id(workspace_id, principal=caller))

    @routes.post("/purgeExpired", response_model=PurgeReportModel, tags=context.tagged("operations"),
                 summary="Purge every expired workspace now (platform only)",
                 responses=responses(E403))
    def purge_expired(caller: Caller, dry_run: Annotated[bool, Query(
            description="Answer what would be purged, changing nothing.")] = False
                      ) -> PurgeReportModel:
        """What the server's reaper does periodically."""
        require_platform(caller, "purging expired workspaces")
        return PurgeReportModel.model_validate(
            context.engine.purge_expired(principal=caller, dry_run=dry_run))

    @routes.get("/cleanupTasks", response_model=list[CleanupTaskModel],
                tags=context.tagged("operations"),
                summary="Pending cleanup tasks, oldest first (platform only)")
    def list_cleanup_tasks(caller: Caller, workspace_id: Annotated[str | None, Query(
            min_length=1, description="Only this workspace's tasks.")] = None
                           ) -> list[CleanupTaskModel]:
        """External resources the platform must destroy; complete each when done."""
        require_platform(caller, "the cleanup outbox")
        return [CleanupTaskModel.model_validate(t) for t in context.engine.cleanup_tasks()
                if workspace_id is None or t.workspace_id == workspace_id]

    @routes.post("/cleanupTasks/{task_id}/complete", status_code=204, response_class=Response,
                 tags=context.tagged("operations"), summary="Mark a cleanup task done (platform only)",
                 responses=responses(e404("cleanup_task_not_found")))
    def complete_cleanup_task(task_id: Annotated[int, Path(ge=1)], caller: Caller) -> None:
        """Completing a completed task is a no-op."""
        require_platform(caller, "the cleanup outbox")
        try:
            context.engine.complete_cleanup(task_id)
        except KeyError:
            raise _no_such_task(task_id) from None

    @routes.post("/cleanupTasks/claim", response_model=list[CleanupTaskModel],
                 tags=context.tagged("operations"),
                 summary="Lease pending cleanup tasks to a worker (platform only)",
                 responses=responses(E403))
    def claim_cleanup_tasks(body: CleanupClaimBody, caller: Caller) -> list[CleanupTaskModel]:
        """Oldest first; a task is never handed to two workers while its lease holds."""
        require_platform(caller, "the cleanup outbox")
        return [CleanupTaskModel.model_validate(t) for t in context.engine.claim_cleanup(
            body.worker, limit=body.limit, lease=timedelta(seconds=body.lease_seconds))]

    @routes.post("/cleanupTasks/{task_id}/fail", status_code=204, response_class=Response,
                 tags=context.tagged("operations"),
                 summary="Report a failed cleanup attempt (platform only)",
                 responses=responses(E403, error_doc(404, "`cleanup_task_not_found`.")))
    def fail_cleanup_task(task_id: Annotated[int, Path(ge=1)], body: CleanupFailBody,
                          caller: Caller) -> None:
        """Ends the lease, counts the attempt, keeps the error; claimable again after
        `retry_after_seconds`. A completed task is left as it is."""
        require_platform(caller, "the cleanup outbox")
        try:
            context.engine.fail_cleanup(task_id, body.error,
                                retry_after=timedelta(seconds=body.retry_after_seconds))
        except KeyError:
            raise _no_such_task(task_id) from None

    @routes.get("/auditLog", response_model=list[AuditRecordModel], tags=context.tagged("operations"),
                summary="The audit log, oldest first (platform only)")
    def audit_log(caller: Caller, subscription_id: Annotated[str | None, Query(
            min_length=1, description="Only this subscription.")] = None,
                  after_seq: Annotated[int | None, Query(
                      ge=0, description="Only records with a greater `seq`: the last `seq` "
                      "a consumer saw, to tail the log.")] = None,
                  limit: Annotated[int | None, Query(
                      ge=1, le=1000, description="At most this many records (default: all).")] = None,
                  ) -> list[AuditRecordModel]:
        """Every operation, refused ones included (`outcome: refused:<code>`), seq ascending."""
        require_platform(caller, "the audit log")
        return [AuditRecordModel.model_validate(r)
                for r in context.engine.audit_log(subscription_id, after_seq=after_seq, limit=limit)]

