"""ServiceOffer controller: a Metacontroller sync hook, its pure core and the ``obol`` CLI.

The pure core (``api``, ``errors``, ``assets``, ``pricing``, ``models``, ``payment``,
``names``, ``admission``, ``children``, ``status``, ``settings``, ``sync``) never performs I/O,
never reads the environment and never looks at the clock. The shells wrap it: the HTTP server
(``app``, ``environment``, ``metrics``, ``logs``, ``gunicorn_conf``, ``gunicorn_worker``), the
optional upstream probes (``observe``) and the CLI (``cli``, ``hook_cli``, ``sell_cli``,
``kubectl``, ``offer_view``, ``presets``).
"""
