"""aiogram routers, one feature a module; thin: read the update, call one service, reply."""
