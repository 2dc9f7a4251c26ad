"""Optional live observation of upstream inference servers (health and in-flight gauges).

Off unless configured. It does network I/O with strict bounds and hands the core plain
:class:`hooks.core.status.Observation` values; it never decides children or conditions.
"""
