"""Runs the fenced code blocks of a Markdown page in order, so that the docs cannot drift from the software.

A page's blocks run in one fresh working directory, so a block sees the files earlier blocks wrote (a run
directory, an export). ```python blocks run in one Python process per page and share its namespace (a quick
start defines ``vae``, a later block uses it); ```bash and ```sh blocks run with ``bash -euo pipefail``, with the
interpreter's own ``bin`` folder (the venv's, where ``keras-vae`` lives) first on PATH. Fences of other languages
(text, console, yaml, nginx, ...) are not run; every fence must name its language.

An HTML comment on the line just before a fence changes what happens to that block:

    <!-- docs-test: skip (needs a network: downloads MNIST from tensorflow-datasets) -->
        not run; the reason must start with "needs a network", "needs a GPU" or "long run".
    <!-- docs-test: background (until http://127.0.0.1:8501/v1/models/vae answers) -->
        a bash block started in the background (a server); the page goes on once the URL answers
        HTTP 200, and the block's processes are stopped when the page ends.
    <!-- docs-test: file (quick.yaml) -->
        a block that is not run (yaml, ...) is written to this file of the working directory.

The ports named in a page's background URLs are replaced, in every block of that page, by free ports, so a
page never collides with a server already running on the machine.

Example:

>>> result = run_page("README.md", workdir)            # raises DocsError naming the first failing block
>>> result.ran, result.skipped
(3, 1)

Run as a script, this module is the per-page Python process: it reads one JSON request per line on stdin
(``[code file, page path, first line]``), runs the code in one shared namespace and answers ``ok`` or ``fail``
on the status pipe whose descriptor is its argument.
"""

import dataclasses
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

RUN_LANGUAGES = {"python": "python", "bash": "bash", "sh": "bash"}
SKIP_REASONS = ("needs a network", "needs a GPU", "long run")
BLOCK_TIMEOUT = 300  # seconds per block: generous for loaded machines, and below pytest-timeout's 600 per test
READY_TIMEOUT = 180  # seconds a background block may take until its URL answers
OUTPUT_TAIL = 80  # lines of a failing block's output shown in the error

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
_MARKER = re.compile(r"^[ \t]*<!--[ \t]*docs-test:[ \t]*(?P<action>[\w-]+)[ \t]*(?:\((?P<argument>.*)\))?[ \t]*-->[ \t]*$")
_BACKGROUND = re.compile(r"^until (?P<url>https?://\S+) answers$")
_URL_PORT = re.compile(r"^https?://[^/:]+:(?P<port>\d+)")


class DocsError(AssertionError):
    """A page whose blocks are malformed, or whose block failed (the message names page, line and output)."""


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block: its page, the line of its opening fence (1-based), language, code and marker."""

    page: str
    line: int
    language: str
    code: str
    action: str = "run"  # run, skip, background or file; blocks of other languages are "show"
    argument: str = None  # the skip reason, the background URL or the file name

    @property
    def runs(self):
        return self.action in ("run", "background")


@dataclasses.dataclass
class PageResult:
    ran: int = 0
    skipped: list = dataclasses.field(default_factory=list)  # (line, reason)
    seconds: float = 0.0
    timings: list = dataclasses.field(default_factory=list)  # (line, seconds) of each block run


def extract_blocks(text, page="<page>"):
    """Every fenced block of ``text``, with the action its marker (or its language) gives it.

    Returns ``(blocks, problems)``: problems are messages about malformed fences and markers (see `check_blocks`).
    """
    lines = text.splitlines()
    blocks, problems = [], []
    marker, i = None, 0
    while i < len(lines):
        found = _MARKER.match(lines[i])
        if found:
            if marker is not None:
                problems.append(f"{page}:{marker[0]}: docs-test marker not followed by a fence")
            marker = (i + 1, found["action"], found["argument"])
            i += 1
            continue
        fence = _FENCE.match(lines[i])
        if not fence:
            if marker is not None and lines[i].strip():
                problems.append(f"{page}:{marker[0]}: docs-test marker not followed by a fence")
                marker = None
            i += 1
            continue
        indent, close = fence["indent"], fence["fence"]
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(close) and set(lines[i].strip()) == {close[0]}):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1  # the closing fence
        language = fence["info"].lower()
        action, argument = ("run" if language in RUN_LANGUAGES else "show"), None
        if marker is not None:
            action, argument = marker[1], marker[2]
            marker = None
        blocks.append(Block(page, start, language, "\n".join(body) + "\n", action, argument))
    if marker is not None:
        problems.append(f"{page}:{marker[0]}: docs-test marker not followed by a fence")
    return blocks, problems + check_blocks(blocks)


def check_blocks(blocks):
    """Messages about blocks that break the rules of this module's docstring (empty when all is well)."""
    problems = []
    for b in blocks:
        where = f"{b.page}:{b.line}"
        runnable = b.language in RUN_LANGUAGES
        if not b.language:
            problems.append(f"{where}: a fence without a language (use ```text for output)")
        elif b.action == "skip":
            if not runnable:
                problems.append(f"{where}: skip marker on a {b.language!r} block, which does not run anyway")
            elif not (b.argument or "").startswith(SKIP_REASONS):
                problems.append(f"{where}: skip marker without an accepted reason (one of {', '.join(SKIP_REASONS)}; "
                                f"got {b.argument!r})")
        elif b.action == "background":
            if RUN_LANGUAGES.get(b.language) != "bash":
                problems.append(f"{where}: background marker on a {b.language!r} block (only bash runs in the background)")
            elif not _BACKGROUND.match(b.argument or ""):
                problems.append(f"{where}: background marker needs (until http://HOST:PORT/PATH answers), got {b.argument!r}")
        elif b.action == "file":
            if runnable:
                problems.append(f"{where}: file marker on a {b.language!r} block, which runs")
            elif not b.argument or os.path.isabs(b.argument) or ".." in b.argument.split("/"):
                problems.append(f"{where}: file marker needs a relative file name, got {b.argument!r}")
        elif b.action not in ("run", "show"):
            problems.append(f"{where}: unknown docs-test marker {b.action!r} (skip, background, file)")
    return problems


def page_blocks(path):
    """The blocks of the page at ``path``; DocsError listing every problem when some are malformed."""
    with open(path, encoding="utf-8") as f:
        blocks, problems = extract_blocks(f.read(), os.path.abspath(path))
    if problems:
        raise DocsError("Malformed docs-test blocks:\n" + "\n".join(problems))
    return blocks


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remap_ports(blocks):
    """The blocks with every port of a background URL replaced by a free one, in every block's code."""
    ports = {}
    for b in blocks:
        if b.action == "background":
            port = _URL_PORT.match(_BACKGROUND.match(b.argument)["url"])
            if port:
                ports.setdefault(port["port"], str(free_port()))

    def remap(text):
        for old, new in ports.items():
            text = re.sub(rf"(?<![\d.]){old}(?!\d)", new, text)
        return text

    return [dataclasses.replace(b, code=remap(b.code), argument=remap(b.argument or "") or b.argument) for b in blocks]


def _tail(path, start=0):
    with open(path, "rb") as f:
        f.seek(start)
        lines = f.read().decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-OUTPUT_TAIL:])


def _failure(block, what, log, start):
    numbered = "\n".join(f"{block.line + i:5d}  {line}" for i, line in enumerate(block.code.splitlines(), 1))
    return DocsError(f"{block.page}:{block.line}: the {block.language} block {what}\n--- block ---\n{numbered}\n"
                     f"--- output (last {OUTPUT_TAIL} lines) ---\n{_tail(log, start)}")


def _stop_group(process, grace=10):
    """Stops a process started with its own session, and everything it started."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass


class _PythonSession:
    """One Python process for a page's python blocks, running them in one namespace."""

    def __init__(self, python, cwd, env, log):
        self.log = log
        status_read, status_write = os.pipe()
        with open(log, "ab") as out:
            self.process = subprocess.Popen([python, os.path.abspath(__file__), str(status_write)], cwd=cwd, env=env,
                                            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                            pass_fds=(status_write,), start_new_session=True, text=True)
        os.close(status_write)
        self.status = os.fdopen(status_read)

    def run(self, block, code_file, timeout):
        self.process.stdin.write(json.dumps([code_file, block.page, block.line + 1]) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.status], [], [], timeout)
        if not ready:
            _stop_group(self.process)
            return f"did not finish in {timeout} s"
        answer = self.status.readline().strip()
        if answer != "ok":
            return "raised an exception" if answer == "fail" else f"stopped its Python process (exit {self.process.poll()})"
        return None

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        _stop_group(self.process)
        self.status.close()


def _start_shell(code_file, cwd, env, log):
    """``bash -euo pipefail code_file`` in its own session (so `_stop_group` reaches what it starts), output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(["bash", "-euo", "pipefail", code_file], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(url, process, timeout):
    """None once ``url`` answers 200, else why not (the process ended, or the time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"ended (exit {process.returncode}) before {url} answered"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return None
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return f"did not make {url} answer within {timeout} s"


def run_page(path, workdir, python=sys.executable, timeout=BLOCK_TIMEOUT):
    """Runs every block of the page at ``path`` in ``workdir/work`` (see the module docstring).

    Returns a `PageResult`; raises `DocsError` naming the first block that fails.
    """
    started = time.monotonic()
    blocks = _remap_ports(page_blocks(path))
    cwd, internal = os.path.join(workdir, "work"), os.path.join(workdir, "runner")
    os.makedirs(cwd, exist_ok=True)
    os.makedirs(internal, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    log = os.path.join(internal, "output.log")
    open(log, "wb").close()
    result, session, background = PageResult(), None, []
    try:
        for b in blocks:
            if b.action == "file":
                with open(os.path.join(cwd, b.argument), "w", encoding="utf-8") as f:
                    f.write(b.code)
                continue
            if b.action == "skip":
                result.skipped.append((b.line, b.argument))
                continue
            if not b.runs:
                continue
            start, began = os.path.getsize(log), time.monotonic()
            code_file = os.path.join(internal, f"block_{b.line}.{'py' if b.language == 'python' else 'sh'}")
            with open(code_file, "w", encoding="utf-8") as f:
                f.write(b.code)
            if b.language == "python":
                session = session or _PythonSession(python, cwd, env, log)
                problem = session.run(b, code_file, timeout)
            elif b.action == "background":
                process = _start_shell(code_file, cwd, env, log)
                background.append(process)
                problem = _wait_for(_BACKGROUND.match(b.argument)["url"], process, READY_TIMEOUT)
            else:
                process = _start_shell(code_file, cwd, env, log)
                try:
                    code = process.wait(timeout)
                    problem = None if code == 0 else f"exited with status {code}"
                except subprocess.TimeoutExpired:
                    problem = f"did not finish in {timeout} s"
                finally:
                    _stop_group(process)
            if problem:
                raise _failure(b, problem, log, start)
            result.ran += 1
            result.timings.append((b.line, round(time.monotonic() - began, 1)))
    finally:
        if session is not None:
            session.close()
        for process in background:
            _stop_group(process)
    result.seconds = time.monotonic() - started
    return result


def docs_pages(root):
    """README.md and every page of docs/, relative to ``root``: the pages whose blocks must run."""
    docs = os.path.join(root, "docs")
    return ["README.md", *sorted(f"docs/{name}" for name in os.listdir(docs) if name.endswith(".md"))]


def run_and_report(path, workdir):
    """`run_page`, printing what ran and what was skipped (shown by ``pytest -s`` and in failure reports)."""
    result = run_page(path, workdir)
    skipped = "".join(f"\n  skipped line {line}: {reason}" for line, reason in result.skipped)
    print(f"{path}: {result.ran} blocks ran in {result.seconds:.0f} s ({result.timings}), "
          f"{len(result.skipped)} skipped{skipped}")
    return result


def _serve(status_fd):
    """The per-page Python process: runs each requested code file in one namespace, answering on ``status_fd``."""
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    with os.fdopen(status_fd, "w") as status:
        for request in sys.stdin:
            code_file, page, first_line = json.loads(request)
            with open(code_file, encoding="utf-8") as f:
                source = "\n" * (first_line - 1) + f.read()  # tracebacks then give the page's own line numbers
            try:
                exec(compile(source, page, "exec"), namespace)
                answer = "ok"
            except BaseException:  # noqa: BLE001 - SystemExit and KeyboardInterrupt fail the block too
                traceback.print_exc()
                answer = "fail"
            sys.stdout.flush()
            sys.stderr.flush()
            status.write(answer + "\n")
            status.flush()


if __name__ == "__main__":
    sys.path[0] = ""  # as `python -c`: the working directory, not tests/ (whose keras_vae/ would shadow the package)
    _serve(int(sys.argv[1]))
