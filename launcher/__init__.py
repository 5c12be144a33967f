"""The run command: brings up the whole chain on one machine (``python -m launcher``)."""
