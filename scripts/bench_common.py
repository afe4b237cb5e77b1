"""What bench_color.py and bench_conv.py share: each measurement runs in a process of its own
(so no framework pays for another's threads, allocations or JIT), repeated, and reported as
the median with the spread (largest minus smallest, relative to the median).

A benchmark script is both the parent, which calls `measure`, and the worker: run as
`SCRIPT --worker ENTRY BATCH ITERATIONS`, it prints one number (it/s, or seconds) on its
last line of output.
"""

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

# what workers start with: the user's environment, not what the parent's imports set in it
# (importing nnpipe sets OMP_WAIT_POLICY=passive, which slows PyTorch's OpenMP pool)
WORKER_ENVIRONMENT = dict(os.environ)
THREADS = int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))
# the same number of threads for nnpipe and PyTorch (workers call torch.set_num_threads(THREADS));
# with fewer threads than cores, workers are also pinned to THREADS cores (see worker_arguments)
THREAD_ENVIRONMENT = {
    "NUMBA_NUM_THREADS": str(THREADS),
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
}


def installed(module):
    return importlib.util.find_spec(module) is not None


def version(module):
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version(module)
    except PackageNotFoundError:
        return "?"


# the modules a worker entry needs; entries not listed need nnpipe only
NEEDS = {
    "torch": ("torch",),
    "infer-torch": ("torch",),
    "jax-jit": ("jax", "optax"),
    "jax-scan": ("jax", "optax"),
}


def available(entry):
    return all(installed(module) for module in NEEDS.get(entry, ()))


def peers_line():
    """Which peers run: PyTorch eager, JAX jit and JAX lax.scan when installed."""
    found = []
    found.append(
        f"PyTorch {version('torch')}"
        if installed("torch")
        else "PyTorch: not installed (pip install torch==2.13.0)"
    )
    found.append(
        f"JAX {version('jax')}"
        if installed("jax") and installed("optax")
        else "JAX: not installed (pip install jax optax)"
    )
    return ", ".join(found)


def idle_share(interval=1.0):
    """The share of CPU time spent idle over `interval` seconds (1.0 where /proc/stat is
    missing)."""

    def times():
        with open("/proc/stat") as stat:
            values = [int(value) for value in stat.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    try:
        idle, total = times()
        time.sleep(interval)
        idle2, total2 = times()
    except OSError:
        return 1.0
    return (idle2 - idle) / max(1, total2 - total)


def wait_until_idle(patience=60):
    """Wait (at most `patience` seconds) for THREADS idle cores: a thread pool that spins at
    its barriers (nnpipe's, PyTorch's) runs many times slower when another process takes one
    of its cores, which would measure the neighbour, not the framework."""
    deadline = time.monotonic() + patience
    while idle_share() * (os.cpu_count() or 1) < 0.85 * THREADS and time.monotonic() < deadline:
        pass


def run_worker(script, entry, batch, iterations):
    """The number a worker process prints (once the machine is idle)."""
    wait_until_idle()
    command = [sys.executable, str(script), "--worker", entry, str(batch), str(iterations)]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**WORKER_ENVIRONMENT, **THREAD_ENVIRONMENT}
    )
    if result.returncode != 0:
        raise SystemExit(f"{entry} (batch {batch}) failed:\n{result.stderr}")
    return float(result.stdout.split()[-1])


def measure(script, entry, batch, iterations, repeats):
    """`repeats` results of the worker `entry`, each from a fresh process."""
    return [run_worker(script, entry, batch, iterations) for _ in range(repeats)]


def summary(values, unit="it/s"):
    """'median unit ±spread%' of repeated measurements."""
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median if median else 0.0
    digits = 0 if unit == "it/s" else 3
    return f"{median:.{digits}f} {unit} ±{100 * spread:.0f}%"


def cold_and_warm_start(command, cwd, warm_runs=3):
    """Seconds a fresh process takes to run `command`, from an empty Numba cache (everything
    compiled, the generated engine modules too), then `warm_runs` times with the cache that
    run left: the cold time and the list of warm ones. Python keeps its bytecode cache as on a
    user's machine (pip writes it when it installs), even where PYTHONDONTWRITEBYTECODE is
    set: compiling nnpipe's sources adds 0.1 s a run."""
    environment = {
        name: value for name, value in WORKER_ENVIRONMENT.items() if name != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory() as cache:
        timings = []
        for _ in range(1 + warm_runs):
            wait_until_idle()
            start = time.perf_counter()
            subprocess.run(
                command,
                check=True,
                cwd=cwd,
                capture_output=True,
                env={
                    **environment,
                    **THREAD_ENVIRONMENT,
                    "NUMBA_CACHE_DIR": cache,
                    "NNPIPE_CACHE_DIR": cache,
                },
            )
            timings.append(time.perf_counter() - start)
    return timings[0], timings[1:]


def start_up_line(example, cold, warm):
    return (
        f"cold start, {example}: fresh process to its first iteration {cold:.1f} s with an"
        f" empty compile cache, {summary(warm, 's')} with a warm one"
    )


def seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def timed_steps(step, iterations, warm_up=10):
    """it/s of `step()` called `iterations` times, after `warm_up` calls (compile, caches)."""
    for _ in range(warm_up):
        step()

    def steps():
        for _ in range(iterations):
            step()

    return iterations / seconds(steps)


SCAN_LENGTH = 100  # training steps fused into one compiled call by JAX's lax.scan


def jax_rate(loss, params, data, batch, iterations, scan, scan_length=SCAN_LENGTH):
    """it/s of Adam 1e-3 on `loss(params, rows)` over random mini-batches of `data`: the whole
    step jitted and called once per step, or (`scan`) `scan_length` steps fused by lax.scan
    (a shorter scan for a step so slow that SCAN_LENGTH of them take many seconds)."""
    import jax
    import optax

    optimizer = optax.adam(1e-3)
    data = jax.device_put(data)
    seed = jax.random.PRNGKey(0)

    def step(state, iteration):
        params, opt_state = state
        key = jax.random.fold_in(seed, iteration)
        rows = data[jax.random.randint(key, (batch,), 0, data.shape[0])]
        value, grads = jax.value_and_grad(loss)(params, rows)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    state = (params, optimizer.init(params))
    iteration = 0
    if scan:
        fused = jax.jit(lambda state, first: jax.lax.scan(step, state, first + jax.numpy.arange(scan_length)))

        def call():
            nonlocal state, iteration
            state, values = fused(state, iteration)
            values.block_until_ready()
            iteration += scan_length

        return scan_length * timed_steps(call, max(1, iterations // scan_length), warm_up=2)
    single = jax.jit(step)

    def call():
        nonlocal state, iteration
        state, value = single(state, iteration)
        value.block_until_ready()
        iteration += 1

    return timed_steps(call, iterations)


def worker_arguments():
    """(entry, batch, iterations) when this process is a worker, else None. A worker runs on
    THREADS cores only, so that every framework, JAX included (it has no thread setting),
    computes on the same cores, and a neighbour's process is moved to the others."""
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        if hasattr(os, "sched_setaffinity") and THREADS < (os.cpu_count() or 1):
            os.sched_setaffinity(0, range(THREADS))
        return sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    return None
