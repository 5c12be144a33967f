"""The ``sitecustomize`` of a bot process a test kills at a chosen call (see its docstring)."""
