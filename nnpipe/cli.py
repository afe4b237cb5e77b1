"""The `nnpipe` command line: run a chain of items, a script, or show help."""

import difflib
import logging
import os
import select
import shutil
import signal
import sys
import textwrap
import traceback
import warnings

import click

from nnpipe import __version__, interrupt, limits, sweeps
from nnpipe.commands import load_all
from nnpipe.errors import OUT_OF_MEMORY, UsageError, UserError, one_line
from nnpipe.lang import forms
from nnpipe.lang.interpreter import Interpreter
from nnpipe.lang.parser import COMMAND_ITEM
from nnpipe.lang.reads import text_reads
from nnpipe.registry import APIS, DEFAULT_API, GROUP_ORDER

COMMANDS = load_all()

LANGUAGE_HELP = (
    "\b\nThe language (`nnpipe help NAME` describes each; `nnpipe help` lists everything):\n"
    + "\n".join(f"  {form.usage}" for form in forms.FORMS)
)


class PipelineGroup(click.Group):
    """`nnpipe ITEM...` runs the items; a first item naming a subcommand runs that instead."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands:
            return "pipe", self.commands["pipe"], args
        return super().resolve_command(ctx, args)

    def main(self, *args, standalone_mode=True, **kwargs):
        """Click's misuse messages (a missing argument, an option's bad value) as nnpipe's own:
        one line, `nnpipe: error: SUBCOMMAND: what (usage: ...)`, exit status 2, for every
        subcommand."""
        try:
            status = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as error:
            click.echo(f"nnpipe: error: {_misuse_text(error)}", err=True)
            sys.exit(error.exit_code)
        if not standalone_mode:
            return status
        sys.exit(status if isinstance(status, int) else 0)  # --help, --version: 0


def _misuse_text(error):
    message = " ".join(error.format_message().split("\n")).strip().rstrip(".")
    message = message[:1].lower() + message[1:]
    context = getattr(error, "ctx", None)
    if context is None:
        return one_line(message)
    subcommand = context.info_name if context.parent is not None else ""
    usage = " ".join(context.get_usage().split()).removeprefix("Usage: ")
    return one_line(f"{subcommand + ': ' if subcommand else ''}{message} (usage: {usage})")


SETTINGS = dict(
    ignore_unknown_options=True, allow_interspersed_args=False, help_option_names=["-h", "--help"]
)


@click.group(
    "nnpipe", cls=PipelineGroup, context_settings=SETTINGS, invoke_without_command=True, epilog=LANGUAGE_HELP
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=None, help="Seed of the random generator (default: random)."
)
@click.option("--quiet", "-q", is_flag=True, help="Hide progress bars and notices.")
@click.option("--verbose", "-v", is_flag=True, help="Print each command as it runs.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
@click.option(
    "--nnlib",
    type=click.Choice(APIS),
    default=DEFAULT_API,
    envvar="NNPIPE_NNLIB",
    show_default=True,
    show_envvar=True,
    help="The nn_lib API of the nn_* commands: nn_lib 2023's, or G'MIC 3.6's.",
)
@click.version_option(__version__, prog_name="nnpipe")
@click.pass_context
def main(ctx, seed, quiet, verbose, debug, nnlib):
    """nnpipe: neural networks as chains of commands on a list of images.

    \b
      nnpipe ITEM...                 run a chain of commands
      nnpipe run FILE [ARGS]...      run a script (FILE '-' reads standard input)
      nnpipe sweep FILE NAME=v1,...  run a script per combination of values (Dask)
      nnpipe map FILE FILES...       run a script per file (Dask)
      nnpipe help [COMMAND]          describe a command, or the language
      nnpipe commands                list the commands by group
    """
    ctx.obj = dict(seed=seed, quiet=quiet, verbose=verbose, debug=debug, api=nnlib)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _interpret(options, action):
    interpreter = Interpreter(
        COMMANDS, options["seed"], options["quiet"], options["verbose"], api=options["api"]
    )
    _reporting_errors(options, lambda: action(interpreter), interpreter.workspace.warn)


def _plain_warning(text):
    click.echo(f"nnpipe: warning: {text}", err=True)


def _reporting_errors(options, action, warn=_plain_warning):
    """Run action(); a user's mistake becomes one line on standard error and the exit status."""
    try:
        with interrupt.handled(), _one_line_warnings(warn), _no_library_logs():
            limits.max_text()  # an NNPIPE_MAX_TEXT that is not a size stops the run before it starts
            action()
    except UserError as error:
        if options["debug"]:
            traceback.print_exc()
        click.echo(f"nnpipe: error: {error}", err=True)
        sys.exit(2 if isinstance(error, UsageError) else 1)
    except KeyboardInterrupt:
        interrupt.report()
        sys.exit(interrupt.EXIT_STATUS)
    except MemoryError:
        if options["debug"]:
            traceback.print_exc()
        click.echo(f"nnpipe: error: {OUT_OF_MEMORY}", err=True)
        sys.exit(1)
    except Exception as error:  # a bug in nnpipe, not the user's mistake
        if isinstance(error, BrokenPipeError) and _output_closed():  # `nnpipe ... | head -1`
            _end_as_unix_tools_do()
        if options["debug"]:
            raise
        click.echo(
            f"nnpipe: internal error: {type(error).__name__}: {one_line(str(error))} "
            "(run with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)


def _output_closed():
    """Whether the reader of standard output or error has gone (`nnpipe ... | head -1`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            poller = select.poll()
            poller.register(stream.fileno(), select.POLLOUT)
            if any(events & select.POLLERR for _, events in poller.poll(0)):
                return True
        except (AttributeError, OSError, ValueError):  # no file behind it (a test's StringIO)
            continue
    return False


def _end_as_unix_tools_do():
    """A closed output pipe ends the run quietly, as G'MIC and Unix tools end: killed by
    SIGPIPE (status 141 in the shell), with no message and nothing left to flush into the
    closed pipe at shutdown. The run has unwound first, so temporaries of writes are removed
    and files already saved are whole."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, OSError, ValueError):
            pass
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(128 + 13)  # where there is no SIGPIPE: the status a shell shows for it


class _one_line_warnings(warnings.catch_warnings):
    """A Python warning (numpy's overflow to inf, say) reaches the user as one line,
    `nnpipe: warning: FILE:LINE: what`, once per place in the code that raised it."""

    def __init__(self, warn):
        super().__init__()
        self.warn = warn

    def __enter__(self):
        super().__enter__()
        warnings.showwarning = self.show

    def show(self, message, category, filename, lineno, file=None, line=None):
        text = (str(message).strip().splitlines() or [category.__name__])[0]
        self.warn(one_line(text))


class _no_library_logs:
    """Libraries (tifffile, Numba, imageio) log to standard error when nobody listens; nnpipe
    reports problems itself, in one line, so their records go nowhere."""

    def __enter__(self):
        self.handler = logging.NullHandler()
        logging.getLogger().addHandler(self.handler)

    def __exit__(self, *exception):
        logging.getLogger().removeHandler(self.handler)


@main.command("pipe", context_settings=SETTINGS, hidden=True)
@click.argument("items", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def pipe(options, items):
    """Run ITEMS as a chain of commands."""

    def action(interpreter):
        if items and items[0].startswith("--"):  # no item starts with '--': a mistyped option
            raise UsageError(f"no such option '{items[0]}' (see nnpipe --help)")
        interpreter.run_items(list(items))

    _interpret(options, action)


@main.command("run", context_settings=SETTINGS)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(options, file, args):
    """Run the script FILE; ARGS become $1, $2, ... ('-' reads standard input)."""

    def action(interpreter):
        name = "<stdin>" if file == "-" else file
        try:
            if file == "-":
                text = limits.read_text(sys.stdin, "the script")
            else:
                with open(file, encoding="utf-8") as handle:
                    text = limits.read_text(handle, "the script")  # a device is read no further
        except OSError as error:
            raise UsageError(f"cannot read script: {error.strerror}", name)
        except UnicodeDecodeError:
            raise UsageError("script is not UTF-8 text", name)
        except UserError as error:
            raise error.locate(name)
        for position, argument in unread_commands(text, name, os.path.dirname(file), args):
            _plain_warning(
                f"run: argument {position} '{one_line(argument)}' names a command, but {name} never reads"
                f" ${position} (nor $*): what follows a script's name are its arguments, not"
                " commands run after it"
            )
        interpreter.run_source(text, name, args)

    _interpret(options, action)


def unread_commands(text, name, folder, arguments):
    """(position, argument) of the script's arguments that name a command and that the script
    never reads (nnpipe.lang.reads): most likely commands meant to run after it."""
    try:
        reads = text_reads(text, name, folder or ".")
    except UserError:  # running it says why
        return []

    def names_a_command(argument):
        match = COMMAND_ITEM.match(argument)  # nn_save, +resize[0], print.
        name = match.group(2) if match else None
        return name in reads.defined or any(COMMANDS.lookup(name, api) for api in APIS)

    return [
        (position, argument)
        for position, argument in enumerate(arguments, 1)
        if names_a_command(argument) and not reads.reads(str(position))
    ]


WORKERS = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes of the local cluster (default: one per CPU).",
)
SCHEDULER = click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Use the Dask cluster of this scheduler (e.g. tcp://host:8786) instead of a local one.",
)
DASHBOARD = click.option(
    "--dashboard",
    is_flag=True,
    help="Start Dask's dashboard (on 127.0.0.1 only) and print its address;"
    " by default the local cluster has none.",
)


@main.command("sweep")
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("settings", nargs=-1, required=True, metavar="NAME=v1,v2,...")
@WORKERS
@SCHEDULER
@DASHBOARD
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the table as CSV (default: RUNS/sweep.csv).",
)
@click.option(
    "--runs",
    "runs_folder",
    type=click.Path(file_okay=False),
    default="runs",
    show_default=True,
    help="Folder of the runs' output folders.",
)
@click.option(
    "--collect",
    default=",".join(sweeps.METRICS),
    show_default=True,
    help="Variables collected at the end of each run; the table is sorted by the first one set.",
)
@click.pass_obj
def sweep_command(options, script, settings, workers, scheduler, dashboard, csv_path, runs_folder, collect):
    """Run SCRIPT once per combination of values, on Dask.

    Each NAME=v1,v2,... gives $NAME one of the values (a NAME that is a number N gives $N,
    the script's N-th argument); every combination runs once, in its own folder RUNS/NAME=v,...
    (its working folder, where its output.txt is written too), with its own seed derived from
    --seed and the combination. The table, best first by the first collected variable (lower
    first for names ending in 'loss'), lists each run's seed, its variables and, for a failing
    run, its one-line error. Exit status 1 only when every run failed."""

    def action():
        names = [name.strip() for name in collect.split(",") if name.strip()]
        results = sweeps.sweep(
            script,
            settings,
            workers,
            scheduler,
            csv_path,
            runs_folder,
            options["seed"],
            names,
            click.echo,
            dashboard,
        )
        if all(outcome.error for outcome in results):
            sys.exit(1)

    _reporting_errors(options, action)


@main.command("map")
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("files", nargs=-1, required=True)
@WORKERS
@SCHEDULER
@DASHBOARD
@click.pass_obj
def map_command(options, script, files, workers, scheduler, dashboard):
    """Run SCRIPT once per file ($1: the file's absolute path), on Dask.

    Progress shows the files done out of the total; a file that fails is reported with its
    one-line error and the others go on (exit status 1 if any failed). A script that loads
    its network with nn_load reads the file once per worker: later files on that worker reuse
    it while the file is unchanged."""

    def action():
        results = sweeps.map_files(script, files, workers, scheduler, options["seed"], click.echo, dashboard)
        if any(outcome.error for outcome in results):
            sys.exit(1)

    _reporting_errors(options, action)


@main.command("help")
@click.argument("name", required=False)
@click.pass_obj
def help_command(options, name):
    """Describe a subcommand, a form of the language or a command (all listed without NAME).

    NAME: a subcommand (run, sweep, map, help, commands), a keyword or form of the language
    (repeat, if, do, break, +, [, $, _, {expr}, :, #...) or a command."""
    if name is None:
        click.echo(everything(options["api"]))
        return
    subcommand = main.commands.get(name)
    if subcommand is not None and not subcommand.hidden:
        context = click.Context(main, info_name="nnpipe")
        click.echo(subcommand.get_help(click.Context(subcommand, info_name=name, parent=context)))
        return
    form = forms.lookup(name)
    if form is not None:
        click.echo("\n".join(_wrapped(line, "") for line in form.describe().splitlines()))
        return
    api = options["api"]
    entry = COMMANDS.lookup(name, api) or COMMANDS.lookup(name, COMMANDS.elsewhere(name, api) or api)
    if entry is None:
        known = [*main.commands, *forms.BY_NAME, *COMMANDS.commands(api), *COMMANDS.aliases(api)]
        suggestion = difflib.get_close_matches(name, [k for k in known if k != "pipe"], n=1)
        hint = f" (did you mean '{suggestion[0]}'?)" if suggestion else ""
        click.echo(f"nnpipe: error: help: unknown command or form '{one_line(name)}'{hint}", err=True)
        sys.exit(2)
    if COMMANDS.lookup(name, api) is None:
        click.echo(f"(nn_lib {entry.apis[0]}'s command: run with --nnlib {entry.apis[0]})")
    click.echo(entry.describe())


def everything(api):
    """`nnpipe help`: the subcommands, the language's forms and the commands, by family."""
    subcommands = [command for command in main.commands.values() if not command.hidden]
    width = max(len(command.name) for command in subcommands)
    lines = ["Command line (nnpipe help NAME):"]
    lines += [f"  {c.name.ljust(width)}  {c.get_short_help_str(limit=200)}" for c in subcommands]
    lines += ["", "Language (nnpipe help NAME, NAME: any word shown):"]
    for form in forms.FORMS:
        lines += [f"  {form.usage}", *_wrapped(form.summary(), "      ").splitlines()]
    return "\n".join(lines + ["", command_list(api)])


@main.command("commands")
@click.pass_obj
def commands_command(options):
    """List every command of the chosen nn_lib API, grouped."""
    click.echo(command_list(options["api"]))


def _columns():
    return max(60, shutil.get_terminal_size().columns - 1)


def _wrapped(text, indent):
    return textwrap.fill(text, _columns(), initial_indent=indent, subsequent_indent=indent) or text


def command_list(api):
    columns = _columns()
    lines = []
    for group in GROUP_ORDER:
        entries = COMMANDS.in_group(group, api)
        if not entries:
            continue
        lines.append(f"{group}:")
        width = max(len(e.name) for e in entries)
        for entry in entries:  # the whole first paragraph, wrapped under itself
            lines.extend(
                textwrap.wrap(
                    entry.summary(),
                    columns,
                    initial_indent=f"  {entry.name.ljust(width)}  ",
                    subsequent_indent=" " * (width + 4),
                    break_on_hyphens=False,
                    break_long_words=False,
                )
                or [f"  {entry.name}"]
            )
        lines.append("")
    return "\n".join(lines).rstrip()
