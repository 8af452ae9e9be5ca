"""REST area: the rules a client needs before it asks (a subscription's policy) and who the
caller is."""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends

import recyclebin as rb
from recyclebin.rest.common import RouterContext, Subscription
from recyclebin.rest.errors import E403, responses
from recyclebin.wire import CallerModel, PolicyRulesModel, caller_model, policy_rules_model

__all__ = ["add_routes"]


def add_routes(routes: APIRouter, context: RouterContext) -> None:
    """Adds the policy and caller routes over ``context.engine`` to ``routes``."""
    Caller = Annotated[rb.Principal | None, Depends(context.authenticate)]

    @routes.get("/subscriptions/{subscription_id}/policy", response_model=PolicyRulesModel,
                tags=context.tagged("policy"), summary="The effective rules of a subscription",
                responses=responses(E403))
    def show_policy(subscription_id: Subscription, caller: Caller) -> PolicyRulesModel:
        """The base policy with the tenant's overrides: whether a permanent delete is
        allowed, whether a delete needs the typed name or a stopped workspace, the
        retention. What a client (the console) needs to know before it asks."""
        return policy_rules_model(context.engine.policy, subscription_id)

    @routes.get("/me", response_model=CallerModel, tags=context.tagged("policy"),
                summary="Who the token stands for")
    def who_am_i(caller: Caller) -> CallerModel:
        """Checks a token without touching any workspace (the console's sign-in)."""
        return caller_model(caller)

