"""aiogram routers, one feature a module (or a package: ``groups``).

Thin: read the update, call one service, reply.
"""
