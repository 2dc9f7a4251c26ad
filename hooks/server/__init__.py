"""The HTTP shell: the Flask app Metacontroller calls (gunicorn, ``obol hook serve``) and the
busy responder the gateway calls (uvicorn, ``obol hook busy``), each its own container.

It parses requests, calls :func:`hooks.core.sync.sync`, writes answers, logs and counts. It
holds no domain logic.
"""
