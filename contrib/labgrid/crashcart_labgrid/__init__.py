"""labgrid support for crashcart: a card reader resource and a driver that flashes, verifies, reads and
extracts pstore records through `crashcart … --json`, on the host the reader is attached to.

Importing the package registers the resources and the driver with labgrid's target factory
(environment YAML: ``imports: [crashcart_labgrid]``).
"""
from .errors import (
    CrashcartError,
    CrashcartImageError,
    CrashcartInfrastructureError,
    CrashcartInterrupted,
    CrashcartMediaError,
    CrashcartNoResult,
    CrashcartUsageError,
    error_for,
)
from .resource import CrashcartReader, NetworkCrashcartReader
from .driver import CrashcartDriver

__all__ = [
    "CrashcartDriver",
    "CrashcartError",
    "CrashcartImageError",
    "CrashcartInfrastructureError",
    "CrashcartInterrupted",
    "CrashcartMediaError",
    "CrashcartNoResult",
    "CrashcartReader",
    "CrashcartUsageError",
    "NetworkCrashcartReader",
    "error_for",
]
