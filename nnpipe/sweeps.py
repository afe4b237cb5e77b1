"""Many runs of a script on Dask's distributed scheduler: sweeps (one run per combination of
variable values) and maps (one run per file).

Each run is one task: a fresh Interpreter inside a worker process runs the script and sends
back an Outcome (the variables it set at its end, or its one-line error). The client collects
outcomes as they complete, so a worker that dies loses only its running task, which the
scheduler gives to another worker. A run's own mistakes are outcomes, never task failures:
Dask does not retry a script that fails the same way each time.

Workers on this machine (the default local cluster) share the on-disk compile caches: Numba's
(NUMBA_CACHE_DIR when set, else the __pycache__ folders beside nnpipe's sources) and the
engine modules generated per network (NNPIPE_CACHE_DIR, else ~/.cache/nnpipe); a kernel
compiled once (by any earlier run) is loaded, not compiled, by every worker. Workers of a
remote cluster should point both at shared folders.
"""

import contextlib
import csv
import io
import logging
import multiprocessing
import multiprocessing.util
import os
import secrets
import shutil
import socket
import tempfile
import threading
import traceback
import zlib
from dataclasses import dataclass, field
from itertools import product

from nnpipe import interrupt
from nnpipe.errors import OUT_OF_MEMORY, UsageError, UserError, one_line
from nnpipe.lang.reads import script_reads
from nnpipe.limits import read_text

# The metrics a sweep collects by default, in the order that picks the sort key; names ending
# in "loss" rank lower first, the others (accuracy, psnr) higher first.
METRICS = ("loss", "val_loss", "accuracy", "psnr")
# A run changes the process's working folder; runs sharing a worker process take turns.
_FOLDER_LOCK = threading.Lock()


@dataclass
class Outcome:
    """What one run sends back."""

    label: str
    seed: int
    folder: str
    metrics: dict = field(default_factory=dict)
    error: str = ""
    output: str = ""
    worker: str = ""


@contextlib.contextmanager
def _working_folder(folder):
    with _FOLDER_LOCK:
        previous = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(previous)


def run_script(script, script_name, label, arguments, variables, seed, folder, collect):
    """The task: run the script at absolute path `script` with `arguments` ($1, ...) and
    `variables` preset, seeded, in `folder`; return its Outcome. Errors name the script
    `script_name`, as the user typed it. Runs inside a worker."""
    from nnpipe.commands import load_all
    from nnpipe.lang.interpreter import Interpreter

    outcome = Outcome(label, seed, folder, worker=f"{socket.gethostname()}:{os.getpid()}")
    out = io.StringIO()
    interpreter = Interpreter(load_all(), seed=seed, quiet=True, out=out, err=out)
    for name, value in variables + [("script_dir", os.path.dirname(script))]:
        interpreter.workspace.set_variable(name, value)
    try:
        os.makedirs(folder, exist_ok=True)
        with _working_folder(folder):
            with open(script, encoding="utf-8") as file:
                text = read_text(file, f"script '{script_name}'")
            interpreter.run_source(text, script_name, arguments)
    except UserError as error:
        outcome.error = str(error)
    except OSError as error:
        outcome.error = one_line(f"cannot run '{script_name}': {error.strerror or error}")
    except MemoryError:
        outcome.error = OUT_OF_MEMORY
    except Exception as error:  # a bug in nnpipe: the run's row says so, the others go on
        outcome.error = one_line(f"internal error: {type(error).__name__}: {error}")
        out.write(traceback.format_exc())
    variables_at_end = interpreter.script_variables()
    outcome.metrics = {name: variables_at_end[name] for name in collect if name in variables_at_end}
    outcome.output = out.getvalue()
    return outcome


# --- the cluster ------------------------------------------------------------------------------


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UsageError("sweeps and maps need Dask: pip install 'nnpipe[dask]'") from None
    return distributed


@contextlib.contextmanager
def client(workers, scheduler, dashboard=False, echo=None):
    """A Dask client: of the scheduler at `scheduler`, or of a local cluster of `workers`
    single-threaded worker processes sharing the cores among their Numba threads.

    The local cluster listens on 127.0.0.1 only (scheduler, nannies, workers) and starts no
    dashboard unless `dashboard`: then one on 127.0.0.1 only, whose address is echoed (it has
    no authentication: anyone who reaches it sees the runs). Its scratch folders go in a
    private folder of the temporary folder, removed when the run ends, Ctrl-C included."""
    distributed = _distributed()
    if scheduler:
        try:
            connection = distributed.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as error:
            raise UsageError(f"cannot reach the Dask scheduler at '{scheduler}': {error}") from None
        with connection:
            if dashboard and echo and connection.dashboard_link:
                echo(f"dashboard (the cluster's own): {connection.dashboard_link}", err=True)
            yield connection
        return
    import dask

    workers = workers or os.cpu_count() or 1
    scratch = tempfile.mkdtemp(prefix="nnpipe-dask-")
    _SCRATCH.add(scratch)
    environment = {
        "NUMBA_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers)),
        "DASK_TEMPORARY_DIRECTORY": scratch,
    }
    for cache in ("NUMBA_CACHE_DIR", "NNPIPE_CACHE_DIR"):
        if cache in os.environ:
            environment[cache] = os.environ[cache]
    settings = {"temporary-directory": scratch}
    if not dashboard:  # Dask's HTTP servers still listen (on 127.0.0.1): a health check only
        settings.update(
            {
                "distributed.scheduler.http.routes": ["distributed.http.health"],
                "distributed.worker.http.routes": ["distributed.http.health"],
            }
        )
    try:
        with (
            dask.config.set(settings),
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                local_directory=scratch,
                dashboard_address="127.0.0.1:0",  # any free port
                scheduler_kwargs={"dashboard": dashboard},
                worker_dashboard_address=None,
                silence_logs=logging.ERROR,
                env=environment,
            ) as cluster,
            distributed.Client(cluster) as connection,
        ):
            _CLUSTERS.add(cluster)
            try:
                if dashboard and echo:
                    echo(f"dashboard: {cluster.dashboard_link} (this machine only)", err=True)
                yield connection
            finally:
                _CLUSTERS.discard(cluster)
    finally:
        _SCRATCH.discard(scratch)
        shutil.rmtree(scratch, ignore_errors=True)


_SCRATCH = set()  # the scratch folders of the local clusters running
_CLUSTERS = set()  # the local clusters running


def _end_local_cluster():
    """Ctrl-C: end the worker processes, then remove the scratch folders they wrote in. Their
    nannies first stop starting them again: a worker that Ctrl-C (sent to the whole process
    group) or this ends would be started anew, with queues made after theirs are unlinked."""
    if not _SCRATCH:
        return
    closing = _distributed().core.Status.closing
    for cluster in list(_CLUSTERS):
        for nanny in list(cluster.workers.values()):
            nanny.status = closing  # a nanny restarts its worker only while running
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=2)
    # The queues between Dask's nannies and their worker processes hold named semaphores, which
    # multiprocessing unlinks at a normal exit; the run ends with os._exit, so they are unlinked
    # here, or multiprocessing's resource tracker reports them as leaked once the run is over.
    multiprocessing.util._run_finalizers(0)
    for scratch in list(_SCRATCH):
        shutil.rmtree(scratch, ignore_errors=True)


interrupt.at_stop(_end_local_cluster)


def outcomes(connection, tasks, on_outcome):
    """Submit every task (keyword arguments of run_script) and call on_outcome(outcome, done)
    as each one completes, in completion order; return the outcomes in task order."""
    distributed = _distributed()
    futures = [connection.submit(run_script, pure=False, **task) for task in tasks]
    index = {future.key: i for i, future in enumerate(futures)}
    results = [None] * len(futures)
    for done, future in enumerate(distributed.as_completed(futures), 1):
        task = tasks[index[future.key]]
        try:
            outcome = future.result()
        except distributed.KilledWorker:
            outcome = Outcome(
                task["label"], task["seed"], task["folder"], error="the run killed every worker it was given"
            )
        except Exception as error:  # the scheduler gave up on the task
            outcome = Outcome(
                task["label"], task["seed"], task["folder"], error=f"{type(error).__name__}: {error}"
            )
        results[index[future.key]] = outcome
        on_outcome(outcome, done)
    return results


# --- sweeps -----------------------------------------------------------------------------------


def parse_settings(settings):
    """[(name, [values])] from NAME=v1,v2 items; a NAME that is a number N gives $N."""
    parsed = []
    for text in settings:
        name, equals, values = text.partition("=")
        if not equals or not (name.isidentifier() or (name.isdigit() and int(name) > 0)) or not values:
            raise UsageError(f"'{text}' is not NAME=v1,v2,... (NAME a variable, or N for $N)")
        if name in (n for n, _ in parsed):
            raise UsageError(f"'{name}' is given twice")
        parsed.append((name, values.split(",")))
    return parsed


def never_read(script, name):
    """Why the values of `name` change nothing but the runs' seeds (see nnpipe.lang.reads)."""
    if name.isdigit():
        shown, where = f"${name}, ${{{name}...}} or $*", "its main program"
    elif name.startswith("_"):
        shown, where = f"${name} or ${{{name}...}}", "its text or the command files it names"
    else:
        shown, where = f"${name} or ${{{name}...}}", "its main program"
    return (
        f"{script} never reads '{name}' (no {shown} in {where}; a name made while it runs is not"
        " seen): its values change only the runs' seeds"
    )


def combinations(parsed):
    """Each combination as [(name, value)], the first name varying slowest."""
    names = [name for name, _ in parsed]
    return [list(zip(names, values)) for values in product(*(values for _, values in parsed))]


def run_seed(base, label):
    """A run's seed: from the sweep's seed and the run's combination, so the same sweep gives
    each run the same seed again, and two runs never share one by accident."""
    return zlib.crc32(f"{base}:{label}".encode())


def sweep_tasks(script, parsed, base_seed, runs_folder, collect):
    """The run_script arguments of each combination's run."""
    tasks = []
    for combination in combinations(parsed):
        label = ",".join(f"{name}={value}" for name, value in combination)
        numbered = {int(name): value for name, value in combination if name.isdigit()}
        arguments = [numbered.get(i, "") for i in range(1, max(numbered, default=0) + 1)]
        tasks.append(
            dict(
                script=os.path.abspath(script),
                script_name=script,
                label=label,
                arguments=arguments,
                variables=[(n, v) for n, v in combination if not n.isdigit()],
                seed=run_seed(base_seed, label),
                folder=os.path.join(runs_folder, label.replace(os.sep, "_")),
                collect=collect,
            )
        )
    return tasks


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def ranked(results, collect):
    """The outcomes best first by the first metric any run set (lower first for a loss,
    higher first otherwise), then the runs without it, failed runs last; and that metric."""
    key = next((name for name in collect if any(name in r.metrics for r in results)), None)
    if key is None:
        return list(results), None
    sign = 1 if key.endswith("loss") else -1

    def order(outcome):
        value = _number(outcome.metrics.get(key, ""))
        return (bool(outcome.error), value is None, sign * value if value is not None else 0)

    return sorted(results, key=order), key


def table(results, collect, names):
    """Text table and CSV rows: the swept values, the seed, the metrics, the error."""
    shown = [name for name in collect if any(name in r.metrics for r in results)]
    header = [f"${name}" if name.isdigit() else name for name in names] + ["seed"] + shown + ["error"]
    rows = []
    for outcome in results:
        values = dict(pair.split("=", 1) for pair in outcome.label.split(","))
        rows.append(
            [values[n] for n in names]
            + [str(outcome.seed)]
            + [outcome.metrics.get(m, "") for m in shown]
            + [outcome.error]
        )
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header] + rows
    ]
    return "\n".join(lines), [header + ["folder", "worker"]] + [
        row + [outcome.folder, outcome.worker] for row, outcome in zip(rows, results)
    ]


def write_csv(path, rows):
    from nnpipe.images import atomic

    def write(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows(rows)

    atomic.write_file(path, write)


def sweep(script, settings, workers, scheduler, csv_path, runs_folder, seed, collect, echo, dashboard=False):
    """nnpipe sweep: run every combination, print the ranked table, write the CSV; return
    the outcomes."""
    parsed = parse_settings(settings)
    reads = script_reads(script)
    for name, _ in parsed:
        if reads is not None and not reads.reads(name):
            echo(one_line(f"nnpipe: warning: sweep: {never_read(script, name)}"), err=True)
    base_seed = seed if seed is not None else secrets.randbelow(2**31)
    runs_folder = os.path.abspath(runs_folder)
    tasks = sweep_tasks(script, parsed, base_seed, runs_folder, collect)
    echo(f"sweep: {len(tasks)} runs of {script} (seed {base_seed}), outputs in {runs_folder}", err=True)

    def progress(outcome, done):
        os.makedirs(outcome.folder, exist_ok=True)
        with open(os.path.join(outcome.folder, "output.txt"), "w", encoding="utf-8") as log:
            log.write(outcome.output + (outcome.error + "\n" if outcome.error else ""))
        echo(one_line(f"[{done}/{len(tasks)}] {outcome.label}: {outcome.error or 'done'}"), err=True)

    with client(workers, scheduler, dashboard, echo) as connection:
        results = outcomes(connection, tasks, progress)
    results, _ = ranked(results, collect)
    text, rows = table(results, collect, [name for name, _ in parsed])
    echo(text)
    csv_path = csv_path or os.path.join(runs_folder, "sweep.csv")
    write_csv(csv_path, rows)
    echo(f"sweep: wrote {csv_path}", err=True)
    return results


# --- maps -------------------------------------------------------------------------------------


def map_files(script, files, workers, scheduler, seed, echo, dashboard=False):
    """nnpipe map: run the script once per file ($1 the file), in this folder; report each
    file as it completes; return the outcomes."""
    base_seed = seed if seed is not None else secrets.randbelow(2**31)
    tasks = [
        dict(
            script=os.path.abspath(script),
            script_name=script,
            label=file,
            arguments=[os.path.abspath(file)],
            variables=[],
            seed=run_seed(base_seed, file),
            folder=os.getcwd(),
            collect=(),
        )
        for file in files
    ]
    failures = []

    def progress(outcome, done):
        echo(one_line(f"[{done}/{len(tasks)}] {outcome.label}: {outcome.error or 'done'}"), err=True)
        if outcome.output.strip():
            echo(outcome.output.rstrip("\n"))
        if outcome.error:
            failures.append(outcome)

    with client(workers, scheduler, dashboard, echo) as connection:
        results = outcomes(connection, tasks, progress)
    summary = f"map: {len(tasks) - len(failures)} of {len(tasks)} files done"
    echo(summary + (f", {len(failures)} failed:" if failures else ""), err=True)
    for outcome in failures:
        echo(one_line(f"  {outcome.label}: {outcome.error}"), err=True)
    return results
