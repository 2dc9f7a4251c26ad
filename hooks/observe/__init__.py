"""Optional live observation of upstream inference servers (health and in-flight gauges).

Off unless configured. It does network I/O with strict bounds and hands the core plain
:class:`hooks.core.observation.Observed` values; it never decides children or conditions.
"""
