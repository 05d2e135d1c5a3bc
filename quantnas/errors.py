"""User-facing errors.

Every mistake a user can make (bad config key, unknown op, corrupt image, missing
folder...) raises :class:`QuantNASError` with a one-line message that names the file or
key and what was expected. The CLI prints ``error: <message>`` and exits with status 2;
it never shows a traceback for these.
"""


class QuantNASError(ValueError):
    """A user-facing error with a one-line, actionable message."""
