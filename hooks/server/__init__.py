"""The HTTP shell: the Flask app that Metacontroller and the gateway call, served by gunicorn.

It parses requests, calls :func:`hooks.core.sync.sync`, writes answers, logs and counts. It
holds no domain logic.
"""
