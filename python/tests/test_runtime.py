"""The seed's behaviour, on the local runtime and on Docker (real processes,
the real daemon)."""

import os
import pickle
import threading
import time

import pydantic
import pytest

import subrt
from conftest import containers_of, eventually, live_processes, unique_sleep


def test_stdout_and_stderr_apart_and_exit_codes(make_spec, workdir, store):
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        result = runtime.execute("echo out; echo err >&2; exit 7")
        assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 7)
        assert result.signal is None and not result.timed_out and not result.killed
        killed = runtime.execute("kill -9 $$")
        assert (killed.exit_code, killed.signal) == (137, 9)
        assert runtime.poll() == 137


@pytest.mark.parametrize(
    "stdin, expected",
    [("one\ntwo\n", "one\ntwo\n"), (b"\x00\xffraw", "\x00\ufffdraw"), (["a", "b\n", "c"], "a\nb\nc\n")],
    ids=["str", "bytes", "lines"],
)
def test_stdin_as_str_bytes_and_lines(make_spec, workdir, store, stdin, expected):
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        assert runtime.execute("cat", stdin=stdin).stdout == expected
        assert runtime.execute("cat").stdout == "", "without stdin a command reads end-of-file"


def test_env_layers(make_spec, workdir, store, monkeypatch):
    monkeypatch.setenv("SUBRT_PY_FROM_OS", "os")
    line = 'echo "$SUBRT_PY_FROM_OS|$A|$B|$C"'
    layered = make_spec(environment={"env": {"A": "spec", "B": "spec", "C": "spec"}})
    with subrt.spawn_runtime(layered, workdir, env_vars={"B": "vars", "C": "vars"}) as runtime:
        assert runtime.execute(line, env={"C": "call"}).stdout == "|spec|vars|call\n"
    with_os = make_spec(environment={"include_os_env": True})
    with subrt.spawn_runtime(with_os, workdir) as runtime:
        assert runtime.execute(line).stdout == "os|||\n"


def test_setup_runs_once_and_its_output_stays_apart(make_spec, workdir, store):
    spec = make_spec(
        setup={
            "commands": ["echo setup-out; echo setup-err >&2; echo ran >> setup.log"],
            "eval_commands": ["echo eval >> setup.log"],
        }
    )
    with subrt.spawn_runtime(spec, workdir) as runtime:
        first = runtime.execute("echo cmd")
        second = runtime.execute("echo cmd")
    assert (first.setup_stdout, first.setup_stderr, first.stdout) == ("setup-out\n", "setup-err\n", "cmd\n")
    assert (second.setup_stdout, second.stdout) == ("", "cmd\n")
    assert (workdir / "setup.log").read_text() == "ran\n", "setup once, no eval_commands"

    (workdir / "setup.log").unlink()
    # An evaluation in Docker runs as 1000:1000 (the seed's rule), who must
    # be able to write here.
    workdir.chmod(0o777)
    with subrt.spawn_runtime(spec, workdir, is_evaluation=True, setup_command="echo extra >> setup.log") as runtime:
        runtime.execute("true")
    assert (workdir / "setup.log").read_text() == "ran\neval\nextra\n"

    (workdir / "setup.log").unlink()
    with subrt.spawn_runtime(spec, workdir, is_evaluation=True, disable_setup=True) as runtime:
        assert runtime.execute("echo cmd").setup_stdout == ""
    assert not (workdir / "setup.log").exists()


def test_a_failing_setup_is_reported_and_the_command_does_not_run(make_spec, workdir, store):
    spec = make_spec(setup={"commands": ["exit 3"]})
    with subrt.spawn_runtime(spec, workdir) as runtime:
        result = runtime.execute("echo never")
    assert result.setup_failure == subrt.SetupFailure(command="exit 3", exit_code=3)
    assert result.stdout == "" and not result.success


def test_timeout_kills_within_a_second_and_leaves_nothing(make_spec, workdir, store):
    n = unique_sleep()
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        runtime.execute("true")  # a warm runtime: the timeout is what is measured
        started = time.monotonic()
        result = runtime.execute(f"sleep {n}", timeout=0.5)
        took = time.monotonic() - started
        assert result.timed_out and result.exit_code == 137
        assert took < 1.0, f"timed out after {took:.2f} s"
        assert eventually(lambda: not live_processes(f"sleep {n}"))


def test_static_assets_resolve(make_spec, workdir, store, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    with subrt.spawn_runtime(make_spec(), workdir, static_assets={"data": data}) as runtime:
        assert runtime.execute("cat {{static:data}}").stdout == "a,b\n1,2\n"
        with pytest.raises(subrt.SolutionRuntimeError, match=r"unknown static asset `nope`"):
            runtime.execute("cat {{static:nope}}")


def test_a_megabyte_of_random_bytes_comes_back_exact(make_spec, workdir, store):
    data = os.urandom(1 << 20)
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        result = runtime.execute("cat", stdin=data)
    assert result.stdout_bytes == data
    assert result.stdout == data.decode("utf-8", errors="replace")
    assert result.stdout_total_bytes == len(data) and not result.truncated


def test_a_result_pickles_and_compares_by_its_text(make_spec, workdir, store):
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        result = runtime.execute(r"printf 'caf\303\251 \377'; printf 'e\n' >&2")
    copy = pickle.loads(pickle.dumps(result))
    assert copy == result
    assert (copy.stdout, copy.stderr) == ("café \ufffd", "e\n")
    assert (result.stdout_bytes, copy.stdout_bytes) == (b"caf\xc3\xa9 \xff",) * 2
    assert result == subrt.RuntimeResult(**{name: getattr(result, name) for name in type(result).model_fields})
    assert result == subrt.RuntimeResult.model_validate(result.model_dump())


def test_stream_is_live(make_spec, workdir, store):
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        started = time.monotonic()
        events = runtime.stream("echo a; sleep 2; echo b >&2")
        first = next(events)
        first_at = time.monotonic() - started
        rest = list(events)
    assert (first.kind, first.text, first.data, first.phase) == ("stdout", "a\n", b"a\n", "command")
    # The same value, and as frozen, as an event a harness makes itself.
    made = subrt.RuntimeEvent(kind="stdout", text="a\n", data=b"a\n", phase="command")
    assert first == made and hash(first) == hash(made) and repr(first) == repr(made)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        first.kind = "stderr"
    assert first_at < 1.5, f"the first line came after {first_at:.2f} s, not before the sleep ended"
    assert [(e.kind, e.text) for e in rest[:-1]] == [("stderr", "b\n")]
    finished = rest[-1]
    assert finished.kind == "finished" and finished.result.exit_code == 0
    assert (finished.result.stdout, finished.result.stderr) == ("a\n", "b\n")


def test_stream_keeps_characters_split_across_chunks(make_spec, workdir, store):
    # 'é' is two bytes; the two printfs write one byte each.
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        events = list(runtime.stream(r"printf '\303'; sleep 0.3; printf '\251\n'"))
    text = "".join(e.text for e in events if e.kind == "stdout")
    assert text == "é\n"
    assert b"".join(e.data for e in events if e.kind == "stdout") == "é\n".encode()


def test_kill_from_another_thread_ends_a_stream(make_spec, workdir, store):
    n = unique_sleep()
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        events = runtime.stream(f"echo started; sleep {n}")
        assert next(events).text == "started\n"
        assert runtime.poll() is None, "poll says None while the command runs"
        killer = threading.Timer(0.2, runtime.kill)
        killer.start()
        started = time.monotonic()
        finished = [e for e in events if e.kind == "finished"][0]
        took = time.monotonic() - started
        assert finished.result.killed
        assert took < 1.2, f"the stream ended {took:.2f} s after the kill was asked (0.2 s)"
        assert eventually(lambda: not live_processes(f"sleep {n}"))


def test_leaving_a_stream_early_kills_its_command(make_spec, workdir, store):
    n = unique_sleep()
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        for event in runtime.stream(f"echo started; sleep {n}"):
            break
        assert eventually(lambda: not live_processes(f"sleep {n}"))
        assert runtime.execute("echo next").stdout == "next\n", "the runtime is free again"


def test_one_command_at_a_time(make_spec, workdir, store):
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        events = runtime.stream("sleep 5")
        with pytest.raises(subrt.SolutionRuntimeError, match="already running"):
            runtime.execute("true")
        events.close()
        assert runtime.execute("echo ok").stdout == "ok\n"


def test_cleanup_is_final_and_idempotent(make_spec, workdir, store, kind):
    runtime = subrt.spawn_runtime(make_spec(), workdir)
    runtime.execute("true")
    runtime.cleanup()
    runtime.cleanup()
    with pytest.raises(subrt.SolutionRuntimeError, match="cleaned up"):
        runtime.execute("true")
    if kind == "docker":
        assert eventually(lambda: not containers_of(runtime.run_id), 5), "the container is removed"


def test_exec_runtime_runs_its_command(make_spec, workdir, store):
    with subrt.spawn_exec_runtime(make_spec(), "cat; echo \"$X\"", working_dir=workdir) as runtime:
        result = runtime.execute(env={"X": "x"}, stdin="in\n", timeout=10)
        assert result.stdout == "in\nx\n"
        assert runtime.poll() == 0
    with subrt.spawn_streaming_runtime(make_spec(), working_dir=workdir) as runtime:
        assert [e.kind for e in runtime.stream("echo a")] == ["stdout", "finished"]


def test_leaving_a_stream_at_its_last_line_does_not_hang(make_spec, workdir, store):
    # The end is read ahead with the output; closing must not wait for more.
    with subrt.spawn_runtime(make_spec(), workdir) as runtime:
        for _ in range(3):
            started = time.monotonic()
            for event in runtime.stream("echo a; echo b"):
                break
            assert time.monotonic() - started < 5
            assert runtime.execute("echo next").stdout == "next\n"


def test_a_command_gets_no_descriptor_the_harness_holds_for_inheritance(workdir, store):
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        os.set_inheritable(fd, True)
        with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir) as runtime:
            check = f"test -e /proc/self/fd/{fd} && echo inherited || echo closed"
            assert runtime.execute(check).stdout == "closed\n"
        assert os.get_inheritable(fd), "the harness's own descriptor is left as it was"
    finally:
        os.close(fd)


def test_a_result_says_what_ended_it_and_what_it_cost(workdir):
    spec = subrt.LocalEnvironmentSpec()
    with subrt.spawn_runtime(spec, workdir, store=False) as runtime:
        result = runtime.execute("sleep 5", timeout=0.2)
        assert (result.timed_out, result.killed_by, result.oom_killed) == (True, "timeout", False)
        assert result.status_lost is None
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root")
    sandboxed = subrt.LocalEnvironmentSpec(
        local={"isolation": "sandbox"},
        limits={"memory": "48m"},
        environment={"env": {"PATH": "/usr/bin:/bin"}},
    )
    with subrt.spawn_runtime(sandboxed, workdir, store=False) as runtime:
        result = runtime.execute("dd if=/dev/zero of=/dev/null bs=256M count=1")
        assert result.oom_killed and result.killed_by == "out_of_memory", result
        assert not result.success
        assert 40 << 20 <= result.peak_memory_bytes <= 48 << 20
        assert result.cpu_system_seconds is not None
