"""WSGI entry point: ``webinfra_demo.wsgi:application``."""

from __future__ import annotations

from .app import create_app

application = create_app()
