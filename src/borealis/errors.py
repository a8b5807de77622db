"""The error hierarchy: one root, a subclass per layer, retryable versus fatal in the type.

Foreign exceptions (OSError, msgpack errors, ...) are translated once, at the boundary where
they enter Borealis, with ``raise X from exc``.
"""

from __future__ import annotations


class BorealisError(Exception):
    """Root of every error Borealis raises on purpose."""

    retryable: bool = False
    code: str = "internal"


class RetryableError(BorealisError):
    """The operation may succeed if tried again (after a failover, a repair, a reconnect)."""

    retryable = True


class ConfigError(BorealisError):
    code = "config"


# --- storage -------------------------------------------------------------------------------


class StorageError(BorealisError):
    code = "storage"


class CorruptionError(StorageError):
    """A checksum did not match: the bytes on disk or on the wire are not what was written."""

    code = "corruption"


class StaleEpochError(StorageError):
    """The request carries an older volume epoch than the segment knows: the writer is fenced."""

    code = "stale_epoch"

    def __init__(self, message: str, *, current_epoch: int = 0) -> None:
        super().__init__(message)
        self.current_epoch = current_epoch


class UnknownVolumeError(StorageError):
    code = "unknown_volume"


class UnknownSegmentError(StorageError):
    code = "unknown_segment"


class NotCaughtUpError(StorageError, RetryableError):
    """The segment cannot serve this read point yet (its SCL is below it); try a peer."""

    code = "not_caught_up"


class PageGarbageCollectedError(StorageError):
    """The read point is below what the segment keeps (below PGMRPL)."""

    code = "gc"


class ProtocolError(BorealisError):
    """A peer sent something that breaks the protocol; its connection is closed."""

    code = "protocol"


class BadRequestError(BorealisError):
    """A well-formed request whose content is invalid; answered, connection kept."""

    code = "bad_request"


# --- volume --------------------------------------------------------------------------------


class VolumeError(BorealisError):
    code = "volume"


class VolumeFullError(VolumeError):
    """A write beyond the configured maximum volume size."""

    code = "volume_full"


class FencedError(VolumeError):
    """This writer was fenced by a newer epoch: it must never acknowledge another commit."""

    code = "fenced"


class QuorumUnavailableError(VolumeError, RetryableError):
    """Too few segments answered to form the quorum the operation needs."""

    code = "quorum_unavailable"


class TransportError(RetryableError):
    """A connection failed or timed out."""

    code = "transport"


class EngineError(BorealisError):
    """A database instance refused or failed a statement. ``sqlstate`` is the PostgreSQL
    SQLSTATE the wire protocol reports for it."""

    code = "engine"
    sqlstate = "XX000"


class SqlError(EngineError):
    """SQLite refused the statement (a syntax error, a constraint, a missing table...);
    ``sqlstate`` is the class PostgreSQL would report for the same refusal."""

    code = "sql"
    sqlstate = "42000"

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate


class UnsafeSettingError(EngineError):
    """A setting that would break durability or the shared volume (journal_mode=OFF/WAL,
    synchronous=OFF, locking_mode=EXCLUSIVE, ATTACH of another file)."""

    code = "unsafe_setting"
    sqlstate = "0A000"


class SerializationError(EngineError, RetryableError):
    """The transaction must be retried: it read, then wanted to write while another
    session held the write lock (waiting could deadlock)."""

    code = "serialization"
    sqlstate = "40001"


class LockTimeoutError(EngineError, RetryableError):
    """The write lock was not free within the lock timeout."""

    code = "lock_timeout"
    sqlstate = "55P03"


class ReadOnlyError(EngineError):
    """A write on a reader (replica) instance."""

    code = "read_only"
    sqlstate = "25006"


ERROR_TYPES: dict[str, type[BorealisError]] = {
    cls.code: cls
    for cls in (
        BorealisError,
        ConfigError,
        StorageError,
        CorruptionError,
        StaleEpochError,
        UnknownVolumeError,
        UnknownSegmentError,
        NotCaughtUpError,
        PageGarbageCollectedError,
        ProtocolError,
        BadRequestError,
        VolumeError,
        VolumeFullError,
        FencedError,
        QuorumUnavailableError,
        TransportError,
        EngineError,
        SqlError,
        UnsafeSettingError,
        SerializationError,
        LockTimeoutError,
        ReadOnlyError,
    )
}
