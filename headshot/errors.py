"""The one exception type that the CLI turns into a clear message and exit code 1."""


class HeadshotError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong option.

    The message is shown as is, without a traceback, so it must name the file or
    option at fault and say why.
    """
