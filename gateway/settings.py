"""Gateway settings, read from ``VEIL_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import MOST_TOKENS, ListenHost, LogLevel, NamedPath
from gateway.chat import servable_model
from gateway.limits import Limits
from gateway.shaping import DEFAULT_TICK, LoopTicker, Shaping, StreamShape
from sealed.receipt import MAX_MODEL_NAME

# A key's rotation and grace are at most this: "never" is no setting, and a bundle's not_after
# stays well within JSON's exact integers, which every client requires of it.
_YEAR = 366 * 86_400


class GatewaySettings(BaseSettings):
    """Everything ``python -m gateway`` reads from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="VEIL_", env_file=".env", extra="ignore", allow_inf_nan=False
    )

    vllm_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    vllm_api_key: SecretStr | None = None
    operator_key_file: NamedPath
    client_keys: str
    max_completion_tokens: int = Field(default=4096, ge=1, le=MOST_TOKENS)
    gateway_host: ListenHost = "127.0.0.1"
    gateway_port: int = Field(default=8600, ge=0, le=65535)
    gateway_suite: Literal["x25519", "mlkem768-x25519"] = "x25519"
    gateway_models: str = ""
    key_rotation_seconds: int = Field(default=3600, ge=10, le=_YEAR)
    key_grace_seconds: int = Field(default=600, ge=0, le=_YEAR)
    max_streams: int = Field(default=256, ge=1, le=100_000)
    max_clock_skew: int = Field(default=120, ge=1, le=86_400)
    multimodal_models: str = ""
    header_timeout: float = Field(default=10.0, gt=0, le=600)
    body_timeout: float = Field(default=30.0, gt=0, le=600)
    max_connections: int = Field(default=1024, ge=1, le=1_000_000)
    client_idle_timeout: float = Field(default=30.0, gt=0, le=3600)
    max_stream_seconds: float = Field(default=600.0, gt=0, le=86_400)
    backend_idle_timeout: float = Field(default=60.0, gt=0, le=3600)
    receipt_ttl: float = Field(default=900.0, gt=0, le=86_400)
    metrics_host: ListenHost = "127.0.0.1"
    metrics_port: int = Field(default=9600, ge=0, le=65535)
    log_level: LogLevel = "INFO"
    stream_shape: StreamShape = StreamShape.TICK
    stream_tick: float = Field(default=DEFAULT_TICK, ge=0.01, le=5.0)
    gateway_loop: Literal["uvloop", "asyncio"] = "uvloop"

    @field_validator("gateway_models")
    @classmethod
    def _servable(cls, value: str) -> str:
        """Each fixed model a name a key bundle can carry (else every client refuses the bundle)."""
        for name in _names(value):
            if not servable_model(name):
                message = f"a model id must be 1 to {MAX_MODEL_NAME} printable characters"
                raise ValueError(message)
        return value

    @property
    def served_models(self) -> tuple[str, ...]:
        """Models named in ``VEIL_GATEWAY_MODELS``; empty means "ask vLLM"."""
        return _names(self.gateway_models)

    @property
    def vision_models(self) -> frozenset[str]:
        """Models named in ``VEIL_MULTIMODAL_MODELS``: the only ones that may take images."""
        return frozenset(_names(self.multimodal_models))

    @property
    def limits(self) -> Limits:
        """The timeouts and caps, as the gateway takes them."""
        return Limits(
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            max_connections=self.max_connections,
            client_idle_timeout=self.client_idle_timeout,
            max_stream_seconds=self.max_stream_seconds,
            backend_idle_timeout=self.backend_idle_timeout,
            receipt_ttl=self.receipt_ttl,
        )

    @property
    def shaping(self) -> Shaping:
        """How sealed streams are shaped, with a tick timer of ``VEIL_STREAM_TICK`` seconds."""
        return Shaping(self.stream_shape, LoopTicker(self.stream_tick))


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())
