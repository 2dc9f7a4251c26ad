"""The ``obol`` command: ``obol hook ...`` runs or exercises the hook, ``obol sell ...`` drives
offers through kubectl. It turns flags into specs and specs into manifests through the core;
the only I/O is the terminal, files the user names, and kubectl.
"""
