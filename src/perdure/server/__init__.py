"""perdure's HTTP server: the REST API, ``/health``, ``/openapi.json`` and the dashboard.

``create_app(app, dev=..., api_token=...)`` builds the Starlette application;
``perdure dev`` and ``perdure server`` serve it with uvicorn (see :mod:`perdure.server.serve`).
"""

from __future__ import annotations

from perdure.server.app import create_app
from perdure.server.http import BODY_LIMIT
from perdure.server.serve import bind_socket, serve, socket_url

__all__ = ["BODY_LIMIT", "bind_socket", "create_app", "serve", "socket_url"]
