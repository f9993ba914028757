"""The one exception type that the CLI turns into a clear message and exit code 1."""


class HeadshotError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong option.

    The message is shown as is, without a traceback, so it must name the file or
    option at fault and say why.
    """


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) during a stage, carrying what the stage kept, in words: the command line
    says it, with the command that continues (re-running a stage resumes it).

    Not a KeyboardInterrupt: typer turns those into a silent exit 130 before the command line
    could say anything; a BaseException, so no `except Exception` on the way swallows it.
    """

    def __init__(self, kept: str):
        super().__init__(kept)
        self.kept = kept
