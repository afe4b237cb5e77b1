"""User-facing errors: one line naming where and what went wrong."""

import re

# text from files or scripts may hold line breaks and other control characters: they are
# shown escaped, so an error stays one line
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
OUT_OF_MEMORY = "out of memory (smaller images, batches, layers or texts need less)"


def one_line(text):
    """`text` with its control characters escaped (a line break shows as \\n)."""
    return CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


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
        return one_line(": ".join(parts + [self.message]))


class ImageError(UserError):
    """What is wrong with one of the images a command works on (`is not a 2D image (size
    4,4,3,1)`): a command applied to each selected image gets the image's index added by the
    interpreter (`image [2] is not a 2D image ...`); raised elsewhere it reads `image is not ...`."""

    def __init__(self, detail):
        super().__init__(f"image {detail}")
        self.detail = detail

    def about(self, index):
        """This error, naming image [index] of the list."""
        self.message = f"image [{index}] {self.detail}"
        return self


class UsageError(UserError):
    """Misuse of the nnpipe command line itself (exit status 2)."""
