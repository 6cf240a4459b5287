"""No network: importing facewear, ultralytics and albumentations and a tiny YOLO training reach nothing outside.

The training runs in a fresh interpreter so every import is really fresh and
every import-time check (ultralytics' ``is_online``, albumentations' version
check, the font download) happens under the socket block. The blocker lets
AF_UNIX sockets and loopback connections through and records everything
else, with the stack that tried, and makes the attempt fail as it would on
a machine without network.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from facewear import env as fw_env

# Installed first thing in the child (and used in-process by the self-tests below).
BLOCKER = textwrap.dedent('''
    import socket as _socket
    import traceback as _traceback

    ATTEMPTS = []
    _ORIG = {}
    _LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


    class NetworkBlocked(OSError):
        pass


    def _host(addr):
        if isinstance(addr, (tuple, list)) and addr:
            addr = addr[0]
        if isinstance(addr, bytes):
            addr = addr.decode(errors="replace")
        return addr


    def _is_local(host):
        if host is None:  # getaddrinfo(None, port): the local wildcard address
            return True
        if not isinstance(host, str):
            return False
        h = host.strip().lower().rstrip(".")
        return h in _LOCAL_NAMES or h.startswith("127.") or h in {"::1", "0.0.0.0", "::", ""}


    def _record(call, target):
        ATTEMPTS.append({"call": call, "target": repr(target),
                         "stack": "".join(_traceback.format_stack()[:-2][-25:])})
        raise NetworkBlocked(f"network access blocked by the test: {call}({target!r})")


    def _connect(self, address):
        if self.family == getattr(_socket, "AF_UNIX", object()) or _is_local(_host(address)):
            return _ORIG["connect"](self, address)
        _record("socket.connect", address)


    def _connect_ex(self, address):
        if self.family == getattr(_socket, "AF_UNIX", object()) or _is_local(_host(address)):
            return _ORIG["connect_ex"](self, address)
        _record("socket.connect_ex", address)


    def _create_connection(address, *args, **kwargs):
        if _is_local(_host(address)):
            return _ORIG["create_connection"](address, *args, **kwargs)
        _record("socket.create_connection", address)


    def _getaddrinfo(host, *args, **kwargs):
        if _is_local(_host(host)):
            return _ORIG["getaddrinfo"](host, *args, **kwargs)
        _record("socket.getaddrinfo", host)


    def install():
        if _ORIG:
            return ATTEMPTS
        _ORIG.update(connect=_socket.socket.connect, connect_ex=_socket.socket.connect_ex,
                     create_connection=_socket.create_connection, getaddrinfo=_socket.getaddrinfo)
        _socket.socket.connect = _connect
        _socket.socket.connect_ex = _connect_ex
        _socket.create_connection = _create_connection
        _socket.getaddrinfo = _getaddrinfo
        return ATTEMPTS


    def uninstall():
        if _ORIG:
            _socket.socket.connect = _ORIG["connect"]
            _socket.socket.connect_ex = _ORIG["connect_ex"]
            _socket.create_connection = _ORIG["create_connection"]
            _socket.getaddrinfo = _ORIG["getaddrinfo"]
            _ORIG.clear()
''')

TRAIN_SCRIPT = textwrap.dedent('''
    import json, os, sys
    exec(compile(open(sys.argv[1]).read(), "blocker", "exec"))
    attempts = install()
    work = sys.argv[2]
    result = {"attempts": attempts}
    try:
        import facewear
        import facewear.env
        from ultralytics import YOLO
        import albumentations  # noqa: F401

        model = YOLO("yolov5n.yaml")  # built from the yaml shipped with ultralytics: no weights download
        facewear.env.configure_ultralytics()

        import cv2
        import numpy as np

        images, labels = os.path.join(work, "images"), os.path.join(work, "labels")
        os.makedirs(images, exist_ok=True)
        os.makedirs(labels, exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(4):
            im = np.full((64, 64, 3), 110, np.uint8)
            x1, y1 = 8 + 3 * i, 10 + 2 * i
            cv2.rectangle(im, (x1, y1), (x1 + 30, y1 + 36), tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
            cv2.imwrite(os.path.join(images, f"im{i}.jpg"), im)
            with open(os.path.join(labels, f"im{i}.txt"), "w") as f:
                f.write(f"{i % 4} {(x1 + 15) / 64:.6f} {(y1 + 18) / 64:.6f} {30 / 64:.6f} {36 / 64:.6f}\\n")
        data = os.path.join(work, "data.yaml")
        with open(data, "w") as f:
            f.write(f"path: {work}\\ntrain: images\\nval: images\\n"
                    "names:\\n  0: face\\n  1: mask\\n  2: sunglasses\\n  3: mask_sunglasses\\n")
        model.train(data=data, epochs=1, imgsz=64, batch=2, workers=0, device="cpu", plots=False, val=True,
                    project=os.path.join(work, "runs"), name="t", exist_ok=True, amp=False, verbose=False)
        from ultralytics import utils as U
        result.update(online=U.ONLINE, autoinstall=U.AUTOINSTALL, sync=U.SETTINGS.get("sync"),
                      user_config_dir=str(U.USER_CONFIG_DIR))
    except BaseException as e:  # report, do not hide: the test prints it
        import traceback
        result["error"] = "".join(traceback.format_exception(e))
    print("OFFLINE_RESULT=" + json.dumps(result, default=str))
''')


def _load_blocker() -> dict:
    ns: dict = {"__name__": "netblock"}
    exec(compile(BLOCKER, "blocker", "exec"), ns)
    return ns


# --- the blocker itself must be able to fail the test ------------------------------------------
@pytest.fixture
def blocker():
    ns = _load_blocker()
    ns["install"]()
    try:
        yield ns
    finally:
        ns["uninstall"]()


def test_blocker_records_outside_connections(blocker):
    attempts = blocker["ATTEMPTS"]
    with pytest.raises(OSError):
        socket.create_connection(("example.com", 80), timeout=1)
    with pytest.raises(OSError):
        socket.getaddrinfo("one.one.one.one", 0)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError):
            s.connect(("1.1.1.1", 53))
        with pytest.raises(OSError):
            s.connect_ex(("8.8.8.8", 53))
    finally:
        s.close()
    assert [a["call"] for a in attempts] == ["socket.create_connection", "socket.getaddrinfo",
                                             "socket.connect", "socket.connect_ex"]
    assert "example.com" in attempts[0]["target"]
    assert "test_offline.py" in attempts[0]["stack"]  # the stack says who tried


def test_blocker_lets_loopback_and_unix_through(blocker):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    t = threading.Thread(target=lambda: srv.accept()[0].close(), daemon=True)
    t.start()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        socket.getaddrinfo("localhost", port)
    finally:
        t.join(5)
        srv.close()
    a, b = socket.socketpair(socket.AF_UNIX)
    a.close()
    b.close()
    assert blocker["ATTEMPTS"] == []


def test_blocker_uninstall_restores_socket():
    orig = (socket.socket.connect, socket.create_connection, socket.getaddrinfo)
    ns = _load_blocker()
    ns["install"]()
    assert socket.create_connection is not orig[1]
    ns["uninstall"]()
    assert (socket.socket.connect, socket.create_connection, socket.getaddrinfo) == orig


# --- the real thing: fresh interpreter, real imports, a tiny training ---------------------------
def _child_env(tmp_path) -> dict[str, str]:
    """The parent's environment minus what ``import facewear`` must set itself, with private caches."""
    env = dict(os.environ)
    for key in (*fw_env._DEFAULTS, "YOLO_CONFIG_DIR", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"):
        env.pop(key, None)
    # a fresh, empty cache and config: the fonts must be provided by facewear.env, not a previous run
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["MPLCONFIGDIR"] = str(tmp_path / "mpl")
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    return env


@pytest.mark.slow
def test_import_and_tiny_training_make_no_connection(tmp_path):
    (tmp_path / "blocker.py").write_text(BLOCKER)
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run([sys.executable, str(tmp_path / "train.py"), str(tmp_path / "blocker.py"), str(work)],
                         cwd=work, env=_child_env(tmp_path), capture_output=True, text=True, timeout=300)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("OFFLINE_RESULT=")]
    assert res.returncode == 0 and lines, (f"child failed (rc={res.returncode}):\n{res.stdout[-4000:]}\n"
                                           f"{res.stderr[-4000:]}")
    result = json.loads(lines[-1].split("=", 1)[1])
    assert "error" not in result, result["error"]

    attempts = result["attempts"]
    assert attempts == [], "network access attempted:\n" + "\n".join(
        f"{a['call']}({a['target']}) from\n{a['stack']}" for a in attempts)

    assert result["online"] is False and result["autoinstall"] is False
    assert result["sync"] is False
    weights = work / "runs" / "t" / "weights"
    assert (weights / "last.pt").is_file(), f"no last.pt in {weights}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    # the fonts came from facewear.env into ultralytics' real config dir
    cfg = tmp_path / "cache" / "facewear" / "ultralytics" / "Ultralytics"
    assert result["user_config_dir"] == str(cfg)
    assert (cfg / "Arial.ttf").is_file() and (cfg / "Arial.Unicode.ttf").is_file()
