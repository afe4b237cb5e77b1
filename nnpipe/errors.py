"""User-facing errors: one line naming where and what went wrong."""


class UserError(Exception):
    """A mistake in a script, an argument or a file; reported as one line, never a traceback.

    `where` is "FILE:LINE" and `command` the command being run; the interpreter fills them in
    as the error travels up, so code deep inside a command only has to say what is wrong.
    """

    def __init__(self, message, where=None, command=None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.command = command

    def locate(self, where, command=None):
        if self.where is None:
            self.where = where
        if self.command is None:
            self.command = command
        return self

    def __str__(self):
        parts = [p for p in (self.where, self.command) if p]
        return ": ".join(parts + [self.message])


class UsageError(UserError):
    """Misuse of the nnpipe command line itself (exit status 2)."""
