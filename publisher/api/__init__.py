"""The read-only metadata API and the holders' gallery (``dnft api``).

:func:`run_api` serves until asked to stop (:mod:`publisher.api.pipeline` assembles it);
:class:`ApiServer` is the same server started and stopped by hand; :func:`default_collection`
checks which collection ``/tokens/{id}`` serves before anything starts.
"""

from publisher.api.app import build_app
from publisher.api.context import ApiContext
from publisher.api.pipeline import ApiServer, default_collection, run_api

__all__ = ["ApiContext", "ApiServer", "build_app", "default_collection", "run_api"]
