"""The MIDAS stand-in behaves as /work/shared/docs/midas.md, "The real bindings
in detail", says: one test per point, each client a fresh process."""

from __future__ import annotations

import signal
import threading

import pytest
from standin import Child, run_client

from cygno_online.testing.midas_standin.frontend import (
    array_bank_event,
    oversized_event,
    slow_control_event,
    small_event,
    string_bank_event,
    struct_bank_event,
)

CONNECT = """
        c = midas.client.MidasClient("tester")
        h = c.open_event_buffer("SYSTEM", max_event_size=4096)
        c.register_event_request(h, sampling_type=midas.GET_NONBLOCKING)
        say("connected")
"""


def test_module_layout_constants_and_errors_live_in_the_package(experiment):
    rc, out, err = run_client(
        experiment,
        """
        say(midas.GET_ALL, midas.GET_NONBLOCKING, midas.GET_RECENT)
        say(midas.TR_START, midas.TR_STOP, midas.TR_PAUSE, midas.TR_RESUME, midas.TR_STARTABORT)
        s = midas.status_codes
        say(s["BM_ASYNC_RETURN"], s["BM_TRUNCATED"], s["CM_INVALID_TRANSITION"], s["CM_UNDEF_EXP"], "RPC_SHUTDOWN" in s)
        e = midas.MidasError(210)
        say(e.code, issubclass(midas.TransitionFailedError, Exception), midas.TID_STRING)
        try:
            midas.client.GET_NONBLOCKING
        except AttributeError:
            say("no re-export")
        """,
    )
    assert rc == 0, err
    assert out.split("\n")[:5] == [
        "1 2 4",
        "1 2 4 8 16",
        "209 210 113 105 True",
        "210 True 12",
        "no re-export",
    ]


def test_one_client_per_process_and_undefined_experiment(experiment):
    rc, out, err = run_client(
        experiment,
        """
        c = midas.client.MidasClient("one")
        try:
            midas.client.MidasClient("two")
        except RuntimeError:
            say("second refused")
        c.disconnect()
        midas.client.MidasClient("three").disconnect()
        try:
            midas.client.MidasClient("x", expt_name="nosuch")
        except midas.MidasError as exc:
            say("undef", exc.code == midas.status_codes["CM_UNDEF_EXP"])
        """,
    )
    assert rc == 0, err
    assert out.split() == ["second", "refused", "undef", "True"]


def test_raw_receive_writes_the_event_as_sent_into_the_callers_buffer(experiment):
    child = Child(
        experiment,
        CONNECT
        + """
        say(len(c.event_buffers[h]))
        buf = (ctypes.c_char * 8192)()
        size = ctypes.c_int(8192)
        try:
            c.lib.c_bm_receive_event(h, ctypes.byref(buf), ctypes.byref(size), ctypes.c_int(1))
        except midas.MidasError as exc:
            say("async", exc.code == midas.status_codes["BM_ASYNC_RETURN"])
        say(c.receive_event(h, async_flag=True), c.receive_event(h, async_flag=30))
        say("ready")
        for _ in range(2):
            size.value = 8192
            c.lib.c_bm_receive_event(h, ctypes.byref(buf), ctypes.byref(size), ctypes.c_int(2000))
            say(buf.raw[: size.value].hex())
        """,
    )
    child.expect("connected")
    assert child.expect("") == "4196\n"  # max_event_size + 100
    child.expect("async True")
    child.expect("None None")
    child.expect("ready")
    ev32 = small_event(5)
    ev16 = slow_control_event(6, [1.5, 2.5])
    experiment.produce([ev32, ev16])
    assert child.expect("") == ev32.hex() + "\n"
    assert child.expect("") == ev16.hex() + "\n"
    rc, _, err = child.finish()
    assert rc == 0, err


@pytest.mark.parametrize("make", [string_bank_event, struct_bank_event, array_bank_event])
def test_unpacker_raises_type_error_on_string_banks_but_raw_bytes_are_fine(experiment, make):
    child = Child(
        experiment,
        CONNECT
        + """
        try:
            c.receive_event(h, async_flag=2000, use_numpy=True)
        except TypeError:
            say("TypeError")
        buf = (ctypes.c_char * 8192)()
        size = ctypes.c_int(8192)
        c.lib.c_bm_receive_event(h, ctypes.byref(buf), ctypes.byref(size), ctypes.c_int(2000))
        say(size.value)
        """,
    )
    child.expect("connected")
    ev = make(1)
    experiment.produce([ev, ev])
    child.expect("TypeError")
    assert child.expect("") == f"{len(ev)}\n"
    assert child.finish()[0] == 0


def test_event_bigger_than_the_receive_buffer_is_bm_truncated_and_skipped(experiment):
    child = Child(
        experiment,
        CONNECT
        + """
        try:
            c.receive_event(h, async_flag=2000)
        except midas.MidasError as exc:
            say("code", exc.code)
        say(c.receive_event(h, async_flag=2000).header.serial_number)
        """,
    )
    child.expect("connected")
    experiment.produce([oversized_event(1, 10_000), small_event(2)])
    child.expect("code 210")
    child.expect("2")
    rc, _, err = child.finish()
    assert rc == 0 and "buffer size 4196 is smaller than event size" in err


def test_communicate_zero_never_serves_a_transition(experiment):
    child = Child(
        experiment,
        """
        c = midas.client.MidasClient("slow")
        import threading
        calls = []
        c.register_transition_callback(midas.TR_START, 500, lambda cl, run: calls.append((run, threading.current_thread() is threading.main_thread())))
        say("registered")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.5:
            c.communicate(0)
        say("served", calls)
        while not calls:
            c.communicate(10)
        say("served", calls)
        """,
    )
    child.expect("registered")
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("s", experiment.start_run(42)))
    t.start()
    child.expect("served []")
    child.expect("served [(42, True)]")
    t.join(10)
    assert box["s"] >= 0.3  # the run control waited for the client's yield
    assert child.finish()[0] == 0
    assert experiment.odb_get("/Runinfo/State") == 3


def test_transition_table_survives_disconnect(experiment):
    rc, out, err = run_client(
        experiment,
        """
        cb = lambda cl, run: None
        c = midas.client.MidasClient("a")
        c.register_transition_callback(midas.TR_START, 500, cb)
        c.disconnect()
        c = midas.client.MidasClient("b")
        try:
            c.register_transition_callback(midas.TR_START, 500, cb)
        except midas.MidasError as exc:
            say(exc.code == midas.status_codes["CM_INVALID_TRANSITION"], exc)
        c.register_transition_callback(midas.TR_STOP, 500, cb)
        c.deregister_transition_callback(midas.TR_STOP)
        c.register_transition_callback(midas.TR_STOP, 500, cb)
        say("re-registered after deregister")
        """,
    )
    assert rc == 0, err
    assert (
        "True" in out and "transition START with sequence number 500 is already registered" in out
    )
    assert "re-registered after deregister" in out


def test_first_signal_is_a_shutdown_at_the_next_yield(experiment):
    child = Child(
        experiment,
        """
        c = midas.client.MidasClient("sig")
        os.kill(os.getpid(), signal.SIGTERM)
        say("still alive")
        try:
            c.communicate(10)
        except SystemExit as exc:
            say("SystemExit", exc.code)
        """,
    )
    child.expect("still alive")
    child.expect("Midas shutdown")
    child.expect("SystemExit 0")
    assert child.finish()[0] == 0


def test_handler_stays_after_disconnect_second_signal_exits_without_cleanup(experiment):
    child = Child(
        experiment,
        """
        import atexit
        atexit.register(lambda: say("atexit ran"))
        midas.client.MidasClient("sig").disconnect()
        os.kill(os.getpid(), signal.SIGTERM)
        say("not reacting")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            say("finally ran")
        """,
    )
    child.expect("not reacting")
    rc, out, err = child.finish()
    assert rc == 0 and "ran" not in out and "hard abort" in err


def test_vanished_shared_memory_aborts_the_local_client(experiment):
    child = Child(
        experiment,
        CONNECT
        + """
        say(c.receive_event(h, async_flag=2000).header.serial_number)
        sys.stdin.readline()
        c.receive_event(h, async_flag=100)
        say("survived")
        """,
    )
    child.expect("connected")
    experiment.produce(small_event(1))
    child.expect("1")
    experiment.remove_shm()
    child.send()
    rc, out, err = child.finish()
    assert rc == -signal.SIGABRT and "aborting" in err and "survived" not in out


def test_shutdown_all_shuts_every_client_down_and_can_leave_state_running(experiment):
    experiment.start_run(7)
    child = Child(
        experiment,
        """
        c = midas.client.MidasClient("mon")
        say("connected")
        while True:
            c.communicate(10)
        """,
    )
    child.expect("connected")
    assert experiment.shutdown_all() == 1
    child.expect("Midas shutdown")
    assert child.finish()[0] == 0
    assert experiment.odb_get("/Runinfo/State") == 3  # stale: no run takes data
    assert experiment.clients() == []


def test_odb_reads_and_messages(experiment):
    experiment.odb_set("/Configurations/Exposure", 0.5)
    rc, out, err = run_client(
        experiment,
        """
        c = midas.client.MidasClient("odb")
        say(c.odb_get("/configurations/exposure"), c.odb_exists("/Nope"))
        try:
            c.odb_get("/No/Such/Key")
        except KeyError:
            say("KeyError")
        c.msg("alarm raised", is_error=True)
        """,
    )
    assert rc == 0, err
    assert out.split() == ["0.5", "False", "KeyError"]
    assert experiment.messages() == [["odb", "alarm raised", True]]


def test_nonblocking_reader_loses_events_when_the_buffer_wraps(tmp_path):
    from cygno_online.testing.midas_standin.experiment import Experiment

    exp = Experiment.start(tmp_path / "small", "lime")
    try:
        exp.odb_set("/Experiment/Buffer sizes/SYSTEM", 2000)
        exp.kill()
        exp.remove_shm()
        exp.restart()  # the buffer size applies to a fresh experiment
        child = Child(
            exp,
            CONNECT
            + """
        sys.stdin.readline()
        got = []
        while (ev := c.receive_event(h, True)) is not None:
            got.append(ev.header.serial_number)
        say(got[-1], len(got))
        """,
        )
        child.expect("connected")
        assert exp.produce([small_event(i, size=150) for i in range(50)]) == 50
        child.send()
        rc, out, _err = child.finish()
        last, n = out.split()
        assert rc == 0 and last == "49" and int(n) < 50
    finally:
        exp.close()


def test_remote_access_carries_big_events_and_reports_a_lost_mserver(remote_experiment):
    exp = remote_experiment
    child = Child(
        exp,
        """
        assert os.environ["MIDAS_SERVER_HOST"]
        c = midas.client.MidasClient("remote")
        h = c.open_event_buffer("SYSTEM", max_event_size=12_000_000)
        c.register_event_request(h, sampling_type=midas.GET_NONBLOCKING)
        say("connected")
        ev = c.receive_event(h, async_flag=5000, use_numpy=True)
        say(ev.banks["CAM0"].size_bytes)
        sys.stdin.readline()
        try:
            c.receive_event(h, async_flag=100)
        except midas.MidasError as exc:
            say("lost", exc.code == midas.status_codes["RPC_NET_ERROR"])
        """,
    )
    child.expect("connected")
    exp.produce(oversized_event(1, 2304 * 2304 * 2))
    child.expect(str(2304 * 2304 * 2))
    exp.kill()
    child.send()
    child.expect("lost True")
    assert child.finish()[0] == 0
