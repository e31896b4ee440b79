"""Pieces the reliability scripts share (bench/kill9.py, bench/retry-after.py, bench/mutate.py, bench/memory.py):
starting herald on a free loopback port with a temporary store, a webhook destination on loopback, and making sure
every process started is stopped when the script ends, whether it ends well, by an exception or by SIGTERM/SIGINT.
Standard library only.
"""

import ctypes
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_HERALD = os.path.join(ROOT, "target/release/herald")

_children = []


def _stop_children_and_exit(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def install_signal_handlers():
    """SIGTERM and SIGINT stop every child before the script exits."""
    signal.signal(signal.SIGTERM, _stop_children_and_exit)
    signal.signal(signal.SIGINT, _stop_children_and_exit)


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: the child gets SIGKILL if this script dies without stopping it (even by SIGKILL).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def stop_all():
    for child in list(_children):
        stop(child)


def stop(process, timeout=30):
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if process in _children:
        _children.remove(process)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def check_binary(path):
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} is missing: build it with cargo build --release")


class Herald:
    """herald serve on 127.0.0.1:0 (the kernel picks the port; it is read from the start line of the JSON log)."""

    def __init__(self, binary, work, config_text, name="herald", storage=""):
        """`storage`: more keys of the `storage` section, in flow style (e.g. `resolved_retention: 2s`)."""
        self.binary = binary
        self.work = work
        self.name = name
        self.config = os.path.join(work, f"{name}.yaml")
        self.db = os.path.join(work, f"{name}.db")
        extra = f", {storage}" if storage else ""
        with open(self.config, "w") as file:
            file.write(f"server: {{listen: 127.0.0.1:0}}\nstorage: {{url: 'sqlite://{self.db}'{extra}}}\n")
            file.write(config_text)
        self.process = None
        self.address = None
        self.starts = 0

    def start(self, timeout=60):
        """Starts herald and waits until it says where it listens and answers /-/ready."""
        self.starts += 1
        log_path = os.path.join(self.work, f"{self.name}.{self.starts}.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD")}
        env["HERALD_LOG"] = os.environ.get("HERALD_LOG", "info")
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [self.binary, "--log-format", "json", "serve", "-c", self.config],
                stdout=log, stderr=log, env=env, preexec_fn=_die_with_parent,
            )
        _children.append(self.process)
        deadline = time.monotonic() + timeout
        self.address = None
        while self.address is None and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"herald exited with {self.process.returncode}; see {log_path}")
            with open(log_path) as log:
                for line in log:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    fields = entry.get("fields", entry)
                    if fields.get("message") == "herald is listening":
                        self.address = fields.get("address")
                        break
            if self.address is None:
                time.sleep(0.05)
        if self.address is None:
            raise RuntimeError(f"herald never said where it listens; see {log_path}")
        while time.monotonic() < deadline:
            if get(self.url("/-/ready"), timeout=2)[0] == 200:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"herald never became ready; see {log_path}")

    def url(self, path):
        return f"http://{self.address}{path}"

    def kill(self):
        """SIGKILL, and reap it."""
        self.process.kill()
        self.process.wait(timeout=30)
        if self.process in _children:
            _children.remove(self.process)

    def stop(self):
        if self.process is not None:
            stop(self.process)

    def rss_kib(self):
        return proc_status(self.process.pid, "VmRSS")


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def get(url, timeout=5):
    """(status, body) of a GET; status 0 when there was no answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def post_json(url, body, timeout=30, content_type="application/json"):
    """(status, body) of a POST; status 0 when there was no answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


class Destination:
    """A webhook destination on a free loopback port. `reply(path, payload, received_at)` returns (status, headers)
    for each request; it runs on the request's own thread. HTTP/1.1 with keep-alive, as real destinations."""

    def __init__(self, reply):
        self.reply = reply
        self.in_progress = 0
        self.lock = threading.Lock()
        destination = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                received = time.monotonic()
                with destination.lock:
                    destination.in_progress += 1
                try:
                    body = self.rfile.read(int(self.headers.get("content-length", "0")))
                    try:
                        payload = json.loads(body)
                    except ValueError:
                        payload = None
                    status, headers = destination.reply(self.path, payload, received)
                    self.send_response(status)
                    for name, value in headers:
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                finally:
                    with destination.lock:
                        destination.in_progress -= 1

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            # The default backlog (5) drops connections opened at once, and their SYN retries add seconds.
            request_queue_size = 1024

            def handle_error(self, request, client_address):
                # A peer that goes away mid-request (herald killed, a send timing out) is expected here.
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate, timeout, step=0.05):
    """Polls `predicate` until it is true or `timeout` seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)

