"""ServiceOffer controller: a Metacontroller sync hook, its pure core and the `obol` CLI.

The pure core (``api``, ``errors``, ``assets``, ``pricing``, ``models``, ``names``,
``admission``, ``children``, ``status``, ``sync``) never performs I/O, never reads the
environment and never looks at the clock. The shells (``app``, ``server``, ``cli``,
``kubectl``, ``observe``) wrap it.
"""
