"""crashcart's exit-code classes (README "Exit codes", schemas/v1/error.schema.json) as labgrid exceptions.

Every exception is a labgrid ``ExecutionError`` (``msg``, ``stdout``, ``stderr`` as lists of lines) with
the exit code, its class and the device failure kind crashcart reported, so that a test or strategy can
tell a bench fault (retry, or take the place offline) from a bad card from a bad image from a mistake.
"""
import attr
from labgrid.driver.exception import ExecutionError


@attr.s(eq=False)
class CrashcartError(ExecutionError):
    """crashcart exited with a code other than 0."""

    exit_code = attr.ib(default=1)
    exit_class = attr.ib(default="internal")
    failure = attr.ib(default=None)
    command = attr.ib(default=None)


@attr.s(eq=False)
class CrashcartInfrastructureError(CrashcartError):
    """The bench: reader or card gone, USB or transport error, a wait that timed out (codes 3, 7)."""


@attr.s(eq=False)
class CrashcartMediaError(CrashcartError):
    """The card: write-protected, bad blocks, a read-back that differs (codes 5, 8, 11)."""


@attr.s(eq=False)
class CrashcartImageError(CrashcartError):
    """The input files: corrupt or truncated image, bmap, partition table or profile (codes 6, 10)."""


@attr.s(eq=False)
class CrashcartUsageError(CrashcartError):
    """The command line: bad arguments, a write refused for safety (codes 2, 12)."""


@attr.s(eq=False)
class CrashcartNoResult(CrashcartError):
    """The command worked and found nothing: no pstore/blk region (code 4)."""


@attr.s(eq=False)
class CrashcartInterrupted(CrashcartError):
    """A signal or a closed output stopped crashcart at a safe point (codes 129, 130, 141, 143)."""


_BY_CLASS = {
    "infrastructure": CrashcartInfrastructureError,
    "media": CrashcartMediaError,
    "image": CrashcartImageError,
    "usage": CrashcartUsageError,
    "result": CrashcartNoResult,
    "interrupted": CrashcartInterrupted,
}

# The class of each exit code, for a crashcart that printed no error object (killed, or not run with --json).
EXIT_CLASS = {
    0: "ok", 1: "internal", 2: "usage", 3: "infrastructure", 4: "result", 5: "media", 6: "image",
    7: "infrastructure", 8: "media", 9: "infrastructure", 10: "image", 11: "media", 12: "usage", 13: "infrastructure",
    129: "interrupted", 130: "interrupted", 141: "interrupted", 143: "interrupted",
}


def error_for(exit_code, error_object=None, *, command=None, stdout=None, stderr=None):
    """The exception for a crashcart run that exited with ``exit_code``; ``error_object`` is the
    ``{"type": "error", …}`` line that closes its stdout, when there is one."""
    obj = error_object or {}
    exit_class = obj.get("class") or EXIT_CLASS.get(exit_code, "internal")
    message = obj.get("message") or (stderr[-1] if stderr else f"crashcart exited with {exit_code}")
    cls = _BY_CLASS.get(exit_class, CrashcartError)
    return cls(
        f"crashcart: {message} (exit {exit_code}, {exit_class})",
        stdout=stdout,
        stderr=stderr,
        exit_code=exit_code,
        exit_class=exit_class,
        failure=obj.get("failure"),
        command=command,
    )
