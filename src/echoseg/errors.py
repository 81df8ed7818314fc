"""The one exception type users see: a one-line message naming the file and the problem."""


class EchosegError(Exception):
    """A user-facing error; the CLI prints ``echoseg: error: <message>`` and exits with code 2."""


class DataError(EchosegError):
    """Bad input data: a missing, unreadable or inconsistent file or folder."""


class ConfigError(EchosegError):
    """A configuration key or value that is not valid."""
