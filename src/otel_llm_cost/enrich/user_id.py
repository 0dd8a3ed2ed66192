"""UserIdHasher: user ids are personal data, so only a keyed hash (HMAC-SHA-256) of one is stored.

The key comes from the argument, else ``OTEL_LLM_COST_USER_ID_KEY``, else a random per-installation
key kept in the user's config directory (see :class:`UserIdHasher`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once

__all__ = ["UserIdHasher", "is_hashed_user_id"]

_logger = logging.getLogger("otel_llm_cost.attribution")

# Our hashes: "h:" + 32 lower-case hex digits (the first 128 bits of the HMAC-SHA-256).
_HASH_PREFIX: Final = "h:"
_HASH_HEX_CHARS: Final = 32
_HASH_RE: Final = re.compile(r"h:[0-9a-f]{32}")
_KEY_FILE_NAME: Final = "user-id-key"
_KEY_BYTES: Final = 32


# Hashes already checked: an attribution block's hashed id is checked again on every LLM span it
# tags (twice), and a set lookup (~0.04 us) replaces the regex (~0.3 us). Cleared when full.
_KNOWN_HASHES: Final[set[str]] = set()
_KNOWN_HASHES_MAX: Final = 4096


def is_hashed_user_id(value: str) -> bool:
    """Whether ``value`` already has the shape of a :class:`UserIdHasher` output (``h:`` + 32 hex)."""
    if value in _KNOWN_HASHES:
        return True
    if len(value) != len(_HASH_PREFIX) + _HASH_HEX_CHARS or _HASH_RE.fullmatch(value) is None:
        return False
    if len(_KNOWN_HASHES) >= _KNOWN_HASHES_MAX:
        _KNOWN_HASHES.clear()
    _KNOWN_HASHES.add(str(value))
    return True


def _config_dir() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg) / "otel-llm-cost"
    if os.name == "nt":
        appdata = os.environ.get("APPDATA")
        if appdata:
            return Path(appdata) / "otel-llm-cost"
    return Path.home() / ".config" / "otel-llm-cost"


def _installation_key(directory: Path) -> tuple[bytes, bool]:
    """Read the per-installation key file, creating it atomically (mode 0600) on first use.

    Two processes starting together must end up with the same key: the new key is written to a
    temporary file and hard-linked into place, which fails if another process won the race, in
    which case its key is read.

    Returns:
        The key, and whether this call created the file.
    """
    path = directory / _KEY_FILE_NAME
    try:
        return _read_key_file(path), False
    except FileNotFoundError:
        pass
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".user-id-key.")
    created = False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(_KEY_BYTES).encode("ascii"))
        # Losing the race is fine: the winner's key is read below.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            created = True
    finally:
        os.unlink(tmp)
    return _read_key_file(path), created


class UnsafeKeyFileError(OSError):
    """The key file can be rewritten by other users: a key they chose would make the hashes reversible."""


def _read_key_file(path: Path) -> bytes:
    with open(path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if os.name != "nt" and mode & 0o022:
            # Whoever can write the key can set one they know, and then reverse every hash by
            # hashing candidate ids (emails, account numbers) with it.
            raise UnsafeKeyFileError(
                f"{path} is writable by {'other users' if mode & 0o002 else 'its group'} "
                f"(mode {stat.S_IMODE(mode):04o}); refusing to hash with it. Run `chmod 600 {path}` "
                "(and check that its key is still yours), or set the key in the environment."
            )
        if os.name != "nt" and mode & 0o044:
            log_once(
                _logger,
                "attribution.user_id_key_readable",
                logging.WARNING,
                "the user-id hash key file %s is readable by other users (mode %04o): anyone who can "
                "read it can reverse cost.user_id hashes by hashing candidate ids. Run `chmod 600 %s`.",
                path,
                stat.S_IMODE(mode),
                path,
            )
        key = handle.read().strip()
    if len(key) < _KEY_BYTES:
        raise OSError(f"{path} holds a key shorter than {_KEY_BYTES} bytes")
    return key


class UserIdHasher:
    """Replaces user ids with a keyed hash (HMAC-SHA-256), stable across processes and restarts.

    The key comes from, in order:

    1. the ``key`` argument;
    2. the ``OTEL_LLM_COST_USER_ID_KEY`` environment variable (UTF-8);
    3. a random per-installation key kept in ``$XDG_CONFIG_HOME/otel-llm-cost/user-id-key``
       (default ``~/.config/otel-llm-cost/user-id-key``), created with mode 0600 on first use.
       Hashes are then stable across restarts *on this machine only*: set the variable (same
       value everywhere) when several hosts must produce the same hash for the same user.
       If that file cannot be read or created, a random in-memory key is used and a warning is
       logged: hashes are then stable only for the life of the process. A key file that its group
       or other users can write is refused the same way, with an ERROR (whoever can write it can
       plant a key they know and reverse the hashes); one they can read is used, with a WARNING.

    A fixed built-in key is deliberately not offered: it would turn the hash into a public,
    unsalted one that anyone can reverse by hashing candidate ids.

    Output is ``"h:"`` + the first 32 hex digits (128 bits) of the HMAC. A value that already has
    that shape (for example a hash received in baggage from an upstream service) is returned
    unchanged, so ids are never hashed twice.

    Args:
        key: Secret key bytes (at least 16 bytes recommended). ``None`` resolves as above.
        enabled: ``False`` stores ids as given; only for ids that are not personal data (service
            accounts, tenants). ``None`` reads ``OTEL_LLM_COST_HASH_USER_IDS`` (default true).

    Raises:
        ValueError: ``key`` is given but empty.

    Example:
        >>> UserIdHasher(key=b"0123456789abcdef").hash("u-42")
        'h:94540378e6acf270e05745e3f980456b'
    """

    __slots__ = ("_cached", "_enabled", "_key", "_key_source")

    def __init__(self, key: bytes | None = None, enabled: bool | None = None) -> None:
        if key is not None and not key:
            raise ValueError("UserIdHasher key must not be empty")
        self._enabled = _config.HASH_USER_IDS.get() if enabled is None else bool(enabled)
        self._key = b""
        self._key_source = "disabled"
        if self._enabled:
            self._key, self._key_source = self._resolve_key(key)
        # HMAC costs ~1-2 us; the same few user ids recur on every span of a request.
        self._cached: Callable[[str], str] = functools.lru_cache(maxsize=4096)(self._compute)

    @staticmethod
    def _resolve_key(key: bytes | None) -> tuple[bytes, str]:
        if key is not None:
            return key, "argument"
        env_key = _config.USER_ID_HASH_KEY.get()
        if env_key:
            return env_key.encode("utf-8"), _config.USER_ID_HASH_KEY.name
        directory = _config_dir()
        path = directory / _KEY_FILE_NAME
        try:
            installation_key, created = _installation_key(directory)
        except UnsafeKeyFileError as exc:
            log_once(
                _logger,
                "attribution.user_id_key_unsafe",
                logging.ERROR,
                "%s Until then user ids are hashed with a random key for this process only (hashes "
                "change on restart).",
                exc,
            )
            return secrets.token_bytes(_KEY_BYTES), "ephemeral"
        except OSError as exc:
            log_once(
                _logger,
                "attribution.user_id_key_file",
                logging.WARNING,
                "cannot read or create the user-id hash key file in %s (%s); using a random key for this "
                "process only, so cost.user_id hashes will change on restart. Set %s to fix this.",
                directory,
                exc,
                _config.USER_ID_HASH_KEY.name,
            )
            return secrets.token_bytes(_KEY_BYTES), "ephemeral"
        if created:
            # A container or a fresh CI home creates a new key on every start, so the same user gets
            # a new hash each time: per-user reports split and per-user budgets reset, silently.
            log_once(
                _logger,
                "attribution.user_id_key_created",
                logging.WARNING,
                "created a new user-id hash key in %s: cost.user_id hashes are stable only on this "
                "machine and home directory. For fleets and containers, set %s to the same secret "
                "everywhere.",
                path,
                _config.USER_ID_HASH_KEY.name,
            )
        return installation_key, str(path)

    @property
    def enabled(self) -> bool:
        """Whether ids are hashed (``False`` only when explicitly turned off)."""
        return self._enabled

    @property
    def key_source(self) -> str:
        """Where the key came from: ``argument``, the env variable name, the key file path,
        ``ephemeral`` or ``disabled``."""
        return self._key_source

    def hash(self, raw: str) -> str:
        """The stored form of a user id.

        Args:
            raw: The user id as the application knows it.

        Returns:
            ``"h:<32 hex>"``; ``raw`` itself when hashing is disabled or ``raw`` is already a hash.
        """
        if not self._enabled:
            return raw
        return self._cached(raw)

    def _compute(self, raw: str) -> str:
        if is_hashed_user_id(raw):
            return raw
        digest = hmac.new(self._key, raw.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return _HASH_PREFIX + digest[:_HASH_HEX_CHARS]

    def __repr__(self) -> str:
        return f"UserIdHasher(enabled={self._enabled}, key_source={self._key_source!r})"
