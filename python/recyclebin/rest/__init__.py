"""The REST plugin's parts; ``recyclebin.fastapi.create_router`` puts them together.

- ``errors``: the error body, the mapping of every error to it, the OpenAPI error docs;
- ``common``: what the area routers share (the context, the path and query parameters);
- one module per area: ``workspaces``, ``recycle_bin``, ``protections`` (holds, liens,
  purge protection, auto-deletion), ``operations`` (purge, cleanup outbox, audit log),
  ``rules`` (policy, caller), ``compat`` (cloud-workstation API).

A new area is one more module with an ``add_routes(router, context)`` function, added to
``AREAS`` in ``recyclebin.fastapi``; its bodies are models in ``recyclebin.wire``.
"""
