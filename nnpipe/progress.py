"""One-line progress on standard error: the training's bar (iterations, loss, speed and time
left) and a status line (how many kernels are compiled)."""

import collections
import threading
import time

from nnpipe.errors import one_line

WIDTH = 24
WARM_UP = 1.0  # seconds of steady steps (after the first chunk, which includes compiling)
# before a speed and a time left are shown
WINDOW = 5.0  # the speed is measured over the last seconds, so it follows changes

_open_line = []  # the stream whose progress line is drawn but not ended (on a terminal)


def end_open_line():
    """End a progress line left open, so that what follows starts on its own line."""
    while _open_line:
        stream = _open_line.pop()
        try:
            stream.write("\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def loss_text(loss):
    """Four significant digits: a tiny loss shows as 1.234e-07, not 0."""
    return f"{float(loss):.4g}"


class Progress:
    def __init__(self, ctx, label, total, clock=time.perf_counter):
        self.label, self.total, self.clock = one_line(label), total, clock  # a name from a file
        self.stream = ctx.err
        self.live = not ctx.quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = self.shown = clock()
        # a terminal redraws one line often; a log gets a line every few seconds
        self.interval = 0.2 if self.tty else 5.0
        self.steady = collections.deque()  # (time, done) since the end of the first chunk
        self.note = ""  # e.g. the latest validation loss
        self.compiling = 0.0  # seconds of the run spent compiling: in its time, not in its speed

    def speed(self, now):
        """Iterations per second over the recent window, or None while still warming up."""
        if not self.steady or now - self.steady[0][0] < WARM_UP:
            return None
        (then, done_then), (_, done_now) = self.steady[0], self.steady[-1]
        return (done_now - done_then) / (now - then) if now > then else None

    def line(self, done, loss, now, stopped=""):
        """The bar after `done` iterations; `stopped` says why a run ended before its total
        (its last line then shows the time taken, not a time left)."""
        filled = int(WIDTH * done / self.total) if self.total else WIDTH
        bar = "#" * filled + "." * (WIDTH - filled)
        over = done >= self.total or stopped
        rate = self.speed(now)
        if rate is None and over and self.steady:  # a short run: its whole speed
            then, done_then = self.steady[0]
            rate = (done - done_then) / (now - then) if now > then and done > done_then else None
        speed = f" {rate:.0f} it/s" if rate else ""
        if over:
            compiling = f" ({self.compiling:.1f}s compiling)" if self.compiling >= 0.05 else ""
            tail = f" {now - self.started:.1f}s{compiling}"
        elif rate:
            tail = f" eta {(self.total - done) / rate:.0f}s"
        else:
            tail = ""
        note = f" {self.note}" if self.note else ""
        stopped = f" {stopped}" if stopped else ""
        return f"{self.label} [{bar}] {done}/{self.total}{stopped} loss {loss_text(loss)}{note}{speed}{tail}"

    def update(self, done, loss):
        now = self.clock()
        self.steady.append((now, done))
        while len(self.steady) > 2 and now - self.steady[1][0] >= WINDOW:
            self.steady.popleft()
        if not self.live or now - self.shown < self.interval:
            return
        self.shown = now
        self.write(self.line(done, loss, now), final=False)

    def close(self, done, loss, stopped=""):
        if self.live:
            self.write(self.line(done, loss, self.clock(), stopped), final=True)

    def write(self, text, final):
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
            _open_line[:] = [] if final else [self.stream]
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class StatusLine:
    """A line of status on standard error that changes as work goes on: redrawn in place on a
    terminal; in a log (not a terminal), written when first shown and when ended only, so that
    a log stays short. Silent with --quiet. Threads may show and end it."""

    def __init__(self, ctx):
        self.stream = ctx.err
        self.live = not ctx.quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.shown = False
        self.lock = threading.Lock()

    def show(self, text):
        with self.lock:
            if not self.live or (self.shown and not self.tty):
                return
            self._write(text, final=False)
            self.shown = True

    def end(self, text):
        """The line's last state, when it was shown at all."""
        with self.lock:
            if self.live and self.shown:
                self._write(text, final=True)
                self.shown = False

    def _write(self, text, final):
        text = one_line(text)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
            _open_line[:] = [] if final else [self.stream]
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
