"""User-facing errors.

Every mistake a user can make (bad config key, unknown op, corrupt image, missing
folder...) raises :class:`QuantNASError` with a one-line message that names the file or
key and what was expected. The CLI prints ``error: <message>`` and exits with status 2;
it never shows a traceback for these.
"""

from os import PathLike


class QuantNASError(ValueError):
    """A user-facing error with a one-line, actionable message."""


def read_user_text(path: str | PathLike[str], what: str) -> str:
    """Read a user-supplied UTF-8 text file, with one-line errors naming it.

    Args:
        path: The file.
        what: What it is, for the message (e.g. ``"config file"``).

    Returns:
        The file's text.

    Raises:
        QuantNASError: If the file cannot be read or is not UTF-8 text.

    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as e:
        raise QuantNASError(
            f"{what} {path} is not UTF-8 text (undecodable byte at offset {e.start})"
        ) from None
    except OSError as e:
        raise QuantNASError(f"{what} {path} cannot be read ({e.strerror or e})") from None


#: The most characters of a value an error message shows (the rest becomes ``...``).
SHOWN_CHARS = 80


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for an error message, at most ``limit`` characters.

    The repr is built by :mod:`reprlib` (a few items per container, a few levels deep), so
    a huge list or string costs no time or memory, and cut to ``limit`` characters with
    ``...`` at the end.

    Args:
        value: The value to show.
        limit: The most characters returned.

    Returns:
        The (possibly shortened) repr.

    """
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 8, 8, 8, 8
    r.maxstring = r.maxother = r.maxlong = limit
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MissingExtraError(QuantNASError):
    """An optional library (a pip extra of quantnas) is needed but not installed."""


def import_extra(module: str, extra: str, what: str):
    """Import an optional library, or raise a one-line error naming the extra to install.

    Args:
        module: The module to import (dotted names allowed, e.g. ``onnx.numpy_helper``).
        extra: The quantnas extra that installs it (``onnx``, ``openvino``, ``ray``).
        what: What needs it, for the message (e.g. ``"ONNX export"``).

    Returns:
        The imported module.

    Raises:
        MissingExtraError: The module cannot be imported.

    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = e.name or module.split(".")[0]
        raise MissingExtraError(
            f"{what} needs {missing}, which is not installed: pip install 'quantnas[{extra}]'"
        ) from None
