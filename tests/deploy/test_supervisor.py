"""deploy/run_production.py's supervisor on real processes: a dead process is restarted with
backoff and the restart is logged, instead of the whole topology stopping."""

import os
import signal
import sys
import time

import pytest

from deploy.run_production import Proc, Supervisor


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def procs():
    made = []
    yield made
    for proc in made:
        proc.kill_group()
        if proc.popen is not None:
            proc.popen.wait(5)
        if proc.reader is not None:
            proc.reader.join(5)


def test_a_killed_process_is_restarted_and_the_others_keep_running(procs, capsys):
    worker = Proc("worker", [sys.executable, "-c", "import time; time.sleep(60)"])
    server = Proc("server", [sys.executable, "-c", "import time; time.sleep(60)"])
    procs += [worker, server]
    env = dict(os.environ)
    for proc in procs:
        proc.start(env)
    supervisor = Supervisor(procs, env, first_backoff=0.05, stable_after=30)
    server_pid, worker_pid = server.popen.pid, worker.popen.pid

    os.kill(worker_pid, signal.SIGKILL)  # the Celery worker's main process, say
    wait_for(lambda: not worker.running())
    supervisor.check()  # schedules the restart
    assert worker.restart_at is not None and server.running()
    wait_for(lambda: (supervisor.check(), worker.running())[1])
    assert worker.restarts == 1 and worker.popen.pid != worker_pid
    assert server.popen.pid == server_pid  # untouched
    log = capsys.readouterr().out
    assert f"worker exited (code {-signal.SIGKILL}); restarting it in 0.05s (restart 1)" in log
    assert "worker restarted (pid" in log


def test_a_process_that_keeps_dying_waits_longer_each_time(procs, capsys):
    now = [100.0]
    crash = Proc("crash", [sys.executable, "-c", "raise SystemExit(3)"])
    procs.append(crash)
    env = dict(os.environ)
    crash.start(env)
    supervisor = Supervisor(
        procs, env, first_backoff=1, max_backoff=4, stable_after=60, clock=lambda: now[0]
    )
    crash.started_at = now[0]
    delays = []
    for _ in range(4):
        wait_for(lambda: not crash.running())
        supervisor.check()
        delays.append(crash.restart_at - now[0])
        now[0] = crash.restart_at
        crash.reader.join(5)
        supervisor.check()  # restarts it
        crash.started_at = now[0]  # the injected clock, not the real one
    assert delays == [1, 2, 4, 4]
    assert crash.restarts == 4
    # One that ran long enough before dying starts over from the first delay.
    wait_for(lambda: not crash.running())
    now[0] += 61
    supervisor.check()
    assert crash.restart_at - now[0] == 1
    assert "crash exited (code 3)" in capsys.readouterr().out
