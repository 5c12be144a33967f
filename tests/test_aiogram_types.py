"""aiogram's models built on first use (bot/aiogram_types.py), as aiogram builds them.

Two processes import aiogram, one through ``bot`` (each model built when first used) and
one on its own (aiogram building all of them at import), and each builds every pydantic model
of ``aiogram.types`` and ``aiogram.methods`` and writes the type each of its fields resolved
to: they must be the same, model for model (a validator is built from those types, the
model's config and its validators, which are the same code in both). A model the deferred
import could not build (a name left unresolved) raises there and not in aiogram's own, and so
differs. The methods go first, each built while none of
the types it holds is: as a bot's first call, before it read any reply.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.harness import REPO, child_environment

SCHEMAS = """
import json, re, sys
if sys.argv[1] == "deferred":
    import bot
import aiogram.methods, aiogram.types
from pydantic import BaseModel, ValidationError

built_at_import = aiogram.types.Message.__pydantic_complete__
# First, as a polling bot's first call: getUpdates' reply, read as aiogram reads it (a generic
# made now, holding types none of which is built yet).
from aiogram.methods.base import Response
message = {"message_id": 5, "date": 1700000000, "chat": {"id": 7, "type": "private"},
           "from": {"id": 7, "is_bot": False, "first_name": "A"}, "text": "hi",
           "entities": [{"type": "bold", "offset": 0, "length": 2}]}
updates = [{"update_id": 1, "message": message},
           {"update_id": 2, "callback_query": {"id": "q", "chat_instance": "c", "data": "d",
            "from": {"id": 7, "is_bot": False, "first_name": "A"}, "message": message}}]
read = Response[list[aiogram.types.Update]].model_validate({"ok": True, "result": updates})
first_read = read.model_dump(mode="json", exclude_none=True)
schemas = {}
for module in (aiogram.methods, aiogram.types):  # methods first: types not yet built
    for name in module.__all__:
        model = getattr(module, name)
        if isinstance(model, type) and issubclass(model, BaseModel):
            try:
                model.model_validate({})  # built here, if it was not: as on its first use
            except ValidationError:
                pass
            except Exception as exc:  # a generic base: the same in both
                schemas[f"{module.__name__}.{name}"] = f"{type(exc).__name__}: {exc}"
                continue
            schemas[f"{module.__name__}.{name}"] = {
                "built": model.__pydantic_complete__,
                # each field's type as resolved: a name found elsewhere shows another class
                "fields": {
                    f: re.sub(" at 0x[0-9a-f]+", "", repr(info.annotation))  # a function's
                    for f, info in model.model_fields.items()
                },
            }
json.dump(
    {"built_at_import": built_at_import, "first_read": first_read, "schemas": schemas},
    sys.stdout,
    default=str,
)
"""


@pytest.fixture(scope="module")
def both() -> tuple[dict[str, object], dict[str, object]]:
    """What the process importing aiogram deferred wrote, and the one importing it eagerly."""
    processes = [
        subprocess.Popen(  # noqa: S603 -- this interpreter, this script
            [sys.executable, "-c", SCHEMAS, how],
            env=child_environment(measured=False),  # traced, it took 40 CPU-s a process
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for how in ("deferred", "eager")
    ]
    written: list[dict[str, object]] = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        written.append(json.loads(out))
    return written[0], written[1]


def test_the_deferred_import_builds_no_type_until_it_is_used(
    both: tuple[dict[str, object], dict[str, object]],
) -> None:
    deferred, eager = both
    assert deferred["built_at_import"] is False
    assert eager["built_at_import"] is True  # aiogram's own import: all built
    assert deferred["first_read"] == eager["first_read"]
    first_read = deferred["first_read"]
    assert isinstance(first_read, dict)
    assert first_read["result"][1]["callback_query"]["message"]["text"] == "hi"


def test_every_model_gets_the_types_aiogram_s_own_build_gives_it(
    both: tuple[dict[str, object], dict[str, object]],
) -> None:
    deferred, eager = both
    deferred_schemas = deferred["schemas"]
    eager_schemas = eager["schemas"]
    assert isinstance(deferred_schemas, dict)
    assert isinstance(eager_schemas, dict)
    assert len(eager_schemas) > 500  # every type and method of the Bot API
    assert deferred_schemas.keys() == eager_schemas.keys()
    differ = [name for name in eager_schemas if deferred_schemas[name] != eager_schemas[name]]
    assert differ == []
    # Most of them build: the few that do not are aiogram's generic bases, the same in both.
    built = [s for s in eager_schemas.values() if isinstance(s, dict)]
    assert len(built) > 500
