"""A signing key file that group or others may read is refused, with what to do about it.

Refused, not fixed: the key may have been read already, which only the operator can judge
(and rotate it if so). The bot told the operator to make a new key with keygen, which refuses
to overwrite the file there, and whose key every gateway must pin again; both parts now name
the mode and ``chmod 600``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sealed.encoding import b64e
from sealed.keyfile import OPERATOR_KEY_HEADER, write_key_file
from tests.botstack import TOKEN
from tests.harness import install_client_key, run_python

if TYPE_CHECKING:
    from pathlib import Path


def test_the_bot_tells_chmod_for_a_client_key_others_may_read_not_keygen(tmp_path: Path) -> None:
    key_file = install_client_key(tmp_path)
    key_file.chmod(0o644)
    env = {
        "VEIL_BOT_TOKEN": TOKEN,
        "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32),
        "VEIL_DATA_DIR": str(tmp_path / "data"),
        "VEIL_CLIENT_KEY_FILE": str(key_file),
    }
    refused = run_python("-m", "bot", env=env, timeout=30)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        (
            f"veil: setting VEIL_CLIENT_KEY_FILE: key file {key_file} has mode 0644, so group"
            " or others may read it; it must be mode 0600: run chmod 600 on it"
        )
    ]
    assert key_file.stat().st_mode & 0o777 == 0o644  # refused, not changed behind their back


def test_a_missing_client_key_is_still_told_how_to_make_one(tmp_path: Path) -> None:
    key_file = tmp_path / "client.key"
    env = {
        "VEIL_BOT_TOKEN": TOKEN,
        "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32),
        "VEIL_DATA_DIR": str(tmp_path / "data"),
        "VEIL_CLIENT_KEY_FILE": str(key_file),
    }
    refused = run_python("-m", "bot", env=env, timeout=30)
    (line,) = refused.stderr.strip().splitlines()
    assert f"make one with python -m bot keygen --out {key_file}" in line


def test_the_gateway_tells_chmod_for_an_operator_key_others_may_read(tmp_path: Path) -> None:
    key_file = tmp_path / "operator.key"
    write_key_file(key_file, OPERATOR_KEY_HEADER)
    key_file.chmod(0o640)
    env = {
        "VEIL_OPERATOR_KEY_FILE": str(key_file),
        "VEIL_CLIENT_KEYS": "bot:" + b64e(b"\x02" * 32),
        "VEIL_VLLM_URL": "http://127.0.0.1:9",
        "VEIL_GATEWAY_PORT": "0",
    }
    refused = run_python("-m", "gateway", env=env, timeout=30)
    assert refused.returncode != 0
    assert (
        f"veil: setting VEIL_OPERATOR_KEY_FILE: key file {key_file} has mode 0640, so group or"
        " others may read it; it must be mode 0600: run chmod 600 on it"
    ) in refused.stderr.splitlines()
