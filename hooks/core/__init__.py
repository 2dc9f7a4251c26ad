"""The pure core: a ServiceOffer and Metacontroller's observed children in, desired state out.

Nothing here performs I/O, reads the environment, looks at the clock or draws random numbers;
the same input gives the same output, byte for byte. The shells (:mod:`hooks.server`,
:mod:`hooks.observe`, :mod:`hooks.cli`) do the I/O and hand the core plain values. The import
contract in ``pyproject.toml`` (``lint-imports``) enforces this.
"""
