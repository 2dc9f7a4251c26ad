"""The HTTP shell: the Flask app Metacontroller calls (gunicorn) and the busy responder the
gateway calls (uvicorn), run as one unit by ``obol hook serve``.

It parses requests, calls :func:`hooks.core.sync.sync`, writes answers, logs and counts. It
holds no domain logic.
"""

from typing import Final

# What every response of both servers says its server is (never gunicorn's or uvicorn's name).
SERVER_NAME: Final = "obol-hook"
