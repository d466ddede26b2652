"""The dashboard: static HTML pages (vanilla ES modules, no build step) that read everything
through the REST API under ``/api/v1``. :func:`dashboard_routes` lists the routes that
:func:`perdure.server.create_app` mounts; the files live in ``static/`` beside this module and
ship inside the wheel. See docs/dashboard.md."""

from perdure.server.dashboard.routes import PAGES, STATIC_DIR, dashboard_routes

__all__ = ["PAGES", "STATIC_DIR", "dashboard_routes"]
