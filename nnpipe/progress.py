"""A one-line progress bar on standard error: iterations, loss, speed and time left."""

import math
import time

from nnpipe.lang.expr import format_number

WIDTH = 24


class Progress:
    def __init__(self, ctx, label, total):
        self.ctx, self.label, self.total = ctx, label, total
        self.stream = ctx.err
        self.live = not ctx.quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self.shown = self.started
        # a terminal redraws one line often; a log gets a line every few seconds
        self.interval = 0.2 if self.tty else 5.0
        self.first_time, self.first_done = None, 0
        self.note = ""  # e.g. the latest validation loss

    def line(self, done, loss):
        elapsed = time.perf_counter() - self.started
        # the speed is measured from the end of the first chunk, which includes compiling
        timed = time.perf_counter() - self.first_time if self.first_time else 0.0
        rate = (done - self.first_done) / timed if timed > 0 else done / max(elapsed, 1e-9)
        filled = int(WIDTH * done / self.total) if self.total else WIDTH
        bar = "#" * filled + "." * (WIDTH - filled)
        left = (self.total - done) / rate if rate > 0 else math.inf
        eta = f" eta {left:.0f}s" if done < self.total and math.isfinite(left) else f" {elapsed:.1f}s"
        note = f" {self.note}" if self.note else ""
        return (f"{self.label} [{bar}] {done}/{self.total} loss {format_number(round(float(loss), 6))}"
                f"{note} {rate:.0f} it/s{eta}")

    def update(self, done, loss):
        now = time.perf_counter()
        if self.first_time is None:
            self.first_time, self.first_done = now, done
        if not self.live or now - self.shown < self.interval:
            return
        self.shown = now
        if self.tty:
            self.stream.write("\r" + self.line(done, loss) + "\x1b[K")
        else:
            self.stream.write(self.line(done, loss) + "\n")
        self.stream.flush()

    def close(self, done, loss):
        if not self.live:
            return
        self.stream.write(("\r" if self.tty else "") + self.line(done, loss) + ("\x1b[K\n" if self.tty else "\n"))
        self.stream.flush()
