"""A good citizen of Python: threads, worker processes, Ctrl-C, and the death
of the Python process."""

import concurrent.futures as futures
import gc
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time

import pytest

import subrt
import workers
from conftest import containers_of, eventually, escapes, live_processes, python_child, unique_sleep


def test_sixteen_threads_share_the_package(workdir, store):
    def job(n):
        with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir) as runtime:
            return [runtime.execute(f"echo {n}-{i}").stdout for i in range(5)]

    with futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(job, range(48)))
    assert results == [[f"{n}-{i}\n" for i in range(5)] for n in range(48)]


def test_waiting_releases_the_gil(workdir, store):
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir) as runtime:
        counter = threading.Thread(target=count)
        counter.start()
        runtime.execute("sleep 1")
        stop.set()
        counter.join()
    # A wait that held the GIL would let the counter tick about once.
    assert len(ticks) > 30, f"another thread ran only {len(ticks)} times during a 1 s execute"


@pytest.mark.parametrize("containment", ["pid-namespace", "process-group"])
def test_a_command_outlives_the_thread_that_started_it(containment, workdir, store):
    # A thread starts a stream, reads its first line and ends; another
    # thread reads on. Waiting threads run the package's runtime, so the
    # command may well have been spawned on the thread that ended: it must
    # not die with it (PR_SET_PDEATHSIG is bound to the spawning thread).
    spec = subrt.LocalEnvironmentSpec(local={"containment": containment})
    with subrt.spawn_runtime(spec, workdir) as runtime:
        handed_over = []

        def start():
            events = runtime.stream("echo started; sleep 0.5; echo finished")
            handed_over.append((events, next(events)))

        starter = threading.Thread(target=start)
        starter.start()
        starter.join()
        events, first = handed_over[0]
        assert first.text == "started\n"
        rest = list(events)
        result = rest[-1].result
        assert (result.exit_code, result.signal, result.stdout) == (0, None, "started\nfinished\n")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes(method, workdir, store):
    # A runtime in the parent first: a forked child inherits its threads' memory.
    with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir) as parent_runtime:
        assert parent_runtime.execute("echo parent").stdout == "parent\n"
        context = multiprocessing.get_context(method)
        with futures.ProcessPoolExecutor(4, mp_context=context) as pool:
            results = list(pool.map(workers.run_one, range(12)))
        assert [(r.stdout, r.exit_code) for _, r in results] == [(f"{n}\n", 0) for n in range(12)]
        assert len({r[0] for r in results}) > 1, "the work spread over the workers"
        assert parent_runtime.execute("echo still").stdout == "still\n"


def test_a_forked_child_cannot_use_its_parents_runtime(workdir, store):
    runtime = subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status, touch nothing else
        try:
            runtime.execute("true")
            os._exit(1)
        except subrt.SolutionRuntimeError as e:
            os._exit(0 if "another process" in str(e) else 2)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert runtime.execute("echo mine").stdout == "mine\n", "the parent's runtime is untouched"
    runtime.cleanup()


def test_a_child_forked_while_a_command_is_spawned_keeps_its_inheritable_descriptors(workdir, store):
    # A spawn hides the harness's inheritable descriptors for its instant; a
    # child forked in that instant holds them hidden, and the spawn that
    # would give them back never ends there.
    fd = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(fd, True)
    stop = threading.Event()

    def spawn_on():
        with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir, store=False) as runtime:
            while not stop.is_set():
                runtime.execute("true")

    spawner = threading.Thread(target=spawn_on)
    spawner.start()
    statuses = []
    try:
        for _ in range(30):
            time.sleep(0.003)
            pid = os.fork()
            if pid == 0:  # the child: its own runtime, one command, then look
                try:
                    with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir, store=False) as mine:
                        mine.execute("true")
                    os._exit(0 if os.get_inheritable(fd) else 1)
                except BaseException:
                    os._exit(2)
            statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    finally:
        stop.set()
        spawner.join()
        os.close(fd)
    assert statuses == [0] * 30, f"children whose descriptor stayed hidden: {statuses.count(1)}"


CTRL_C = """
import sys, time, subrt
runtime = subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), ".", store=False)
print("ready", flush=True)
started = time.monotonic()
try:
    if sys.argv[1] == "execute":
        runtime.execute("sleep {n}")
    else:
        for event in runtime.stream("sleep {n}"):
            pass
except KeyboardInterrupt:
    print("interrupted", flush=True)
print(runtime.execute("echo after").stdout, end="", flush=True)
"""


@pytest.mark.parametrize("call", ["execute", "stream"])
def test_ctrl_c_kills_the_command_and_raises_keyboard_interrupt(call, workdir):
    n = unique_sleep()
    child = python_child(CTRL_C.format(n=n).replace("sys.argv[1]", repr(call)), cwd=workdir)
    assert child.stdout.readline() == "ready\n"
    assert eventually(lambda: bool(live_processes(f"sleep {n}")), 5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=10)
    assert out == "interrupted\nafter\n", err
    assert eventually(lambda: not live_processes(f"sleep {n}"))


SIGKILLED = """
import subrt
spec = subrt.EnvironmentSpec.from_dict({spec!r})
runtime = subrt.spawn_runtime(spec, ".")
print(runtime.run_id, flush=True)
for event in runtime.stream({line!r}):
    print(event.text, end="", flush=True)
"""


def test_sigkill_of_python_leaves_no_process(workdir, store):
    line, needles = escapes()
    spec = subrt.LocalEnvironmentSpec().to_dict()
    child = python_child(SIGKILLED.format(spec=spec, line=line), cwd=workdir)
    child.stdout.readline()
    assert child.stdout.readline() == "started\n"
    assert eventually(lambda: all(live_processes(n) for n in needles), 5)
    child.kill()
    child.wait()
    for needle in needles:
        assert eventually(lambda: not live_processes(needle)), f"{needle} outlived Python"


SIGKILLED_AS_ANOTHER_USER = """
import asyncio
import subrt
spec = subrt.EnvironmentSpec.from_dict({spec!r})
runtime = subrt.spawn_runtime(spec, {workdir!r})
print(runtime.run_id, flush=True)

async def main():
    command = await runtime.astart({line!r}, user="nobody")
    async for event in command:
        print(event.text, end="", flush=True)

asyncio.run(main())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs a command as another user")
def test_sigkill_of_python_kills_a_command_run_as_another_user(store):
    # A process-group command dies with Python through PR_SET_PDEATHSIG,
    # which a change of user clears: it must be asked for after the user
    # is taken. A working dir `nobody` may enter (pytest's are root's alone).
    workdir = tempfile.mkdtemp(prefix="subrt-as-nobody-")
    os.chmod(workdir, 0o755)
    n = unique_sleep()
    spec = subrt.LocalEnvironmentSpec(local={"containment": "process-group"}).to_dict()
    script = SIGKILLED_AS_ANOTHER_USER.format(
        spec=spec, workdir=str(workdir), line=f"echo started; exec sleep {n}"
    )
    child = python_child(script)
    child.stdout.readline()
    assert child.stdout.readline() == "started\n", child.stderr.read()
    assert eventually(lambda: live_processes(f"sleep {n}"), 5)
    child.kill()
    child.wait()
    try:
        assert eventually(lambda: not live_processes(f"sleep {n}")), "the command outlived Python"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_sigkill_of_python_leaves_no_container(workdir, store, docker_image):
    line, needles = escapes()
    spec = subrt.DockerEnvironmentSpec(name="d", docker={"image": docker_image}).to_dict()
    child = python_child(SIGKILLED.format(spec=spec, line=line), cwd=workdir)
    run_id = child.stdout.readline().strip()
    assert child.stdout.readline() == "started\n", child.stderr.read()
    assert containers_of(run_id)
    child.kill()
    child.wait()
    assert eventually(lambda: not containers_of(run_id), 10), "the container outlived Python"
    for needle in needles:
        assert eventually(lambda: not live_processes(needle)), f"{needle} outlived Python"


def test_a_runtime_left_at_exit_is_cleaned_up(workdir, store, docker_image):
    script = f"""
import subrt
spec = subrt.DockerEnvironmentSpec(name="d", docker={{"image": {docker_image!r}}})
runtime = subrt.spawn_runtime(spec, ".")
runtime.execute("true")
print(runtime.run_id, flush=True)
"""
    child = python_child(script, cwd=workdir)
    out, err = child.communicate(timeout=30)
    run_id = out.strip()
    assert child.returncode == 0, err
    assert not containers_of(run_id), "the exit hook removed the container"
    events = (store / run_id / "events.jsonl").read_text()
    assert '"e":"end"' in events, "and completed the run log"


def test_a_dropped_runtime_is_cleaned_up(workdir, store, docker_image):
    spec = subrt.DockerEnvironmentSpec(name="d", docker={"image": docker_image})
    runtime = subrt.spawn_runtime(spec, workdir)
    runtime.execute("true")
    run_id = runtime.run_id
    assert containers_of(run_id)
    del runtime
    gc.collect()
    assert eventually(lambda: not containers_of(run_id), 10), "the dropped runtime's container is removed"
    assert eventually(lambda: '"e":"end"' in (store / run_id / "events.jsonl").read_text(), 5)
