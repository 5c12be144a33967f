"""The gateway's in-process tests again, on uvloop: the event loop it runs on by default."""
