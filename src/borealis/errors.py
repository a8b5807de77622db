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
    )
}
