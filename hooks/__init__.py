"""ServiceOffer controller: a Metacontroller sync hook, its pure core and the ``obol`` CLI.

``hooks.core`` is pure (no I/O, environment, clock or randomness). Around it: ``hooks.server``
(the Flask/gunicorn shell), ``hooks.observe`` (optional upstream probes), ``hooks.cli`` (the
``obol`` command) and ``hooks.config`` (the only module that reads the environment).
"""
