"""The ``sitecustomize`` of the processes the tests start (see its docstring)."""
