"""The ``concord`` command line: ``main.py`` holds the app and the sync commands, ``link.py``
the link lifecycle, ``service.py`` the service and tokens, ``demo.py`` the demo."""

from concord.cli.main import app, main

__all__ = ["app", "main"]
