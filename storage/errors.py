"""Storage errors. Messages are safe to log and name the backend, never a secret."""


class StorageError(Exception):
    """A storage operation failed."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached or opened (Redis down, database file not writable)."""
