"""The docs cannot drift: every python/bash block of README.md and docs/*.md runs as written (tests/docs_runner.py),
every relative link points at a file and heading that exist, every `keras-vae` flag the pages name exists, and
the variants table lists exactly the variants the library declares.

The pages' blocks run here and in tests/test_docs_exports.py, half each, so that ``pytest -n 2 --dist loadfile``
runs the two halves on two workers.
"""

import os
import re
import shlex
import socket
import sys
import time

import pytest

from tests import test_docs_exports
from tests.docs_runner import DocsError, docs_pages, extract_blocks, free_port, page_blocks, run_and_report, run_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = docs_pages(ROOT)
RUN_HERE = ["README.md", "docs/cli.md", "docs/training.md"]


def _write(tmp_path, text, name="page.md"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ----------------------------------------------------------------------------------------------- the pages
@pytest.mark.parametrize("page", RUN_HERE)
def test_page_blocks_run(page, tmp_path):
    result = run_and_report(os.path.join(ROOT, page), str(tmp_path))  # a failing block raises DocsError
    assert result.ran >= 1, f"{page}: no block ran"


def test_every_page_runs_in_one_of_the_two_files():
    assert sorted(RUN_HERE + test_docs_exports.RUN_HERE) == sorted(PAGES)


def _inline_code(text):
    """Inline code spans of Markdown ``text`` outside fenced blocks."""
    outside = re.sub(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", outside)


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path):
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", "", f.read(), flags=re.S | re.M)
    return {_slug(h) for h in re.findall(r"^#{1,6}\s+(.*)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES)
def test_links_point_at_files_and_headings(page):
    path = os.path.join(ROOT, page)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", text)
    broken = []
    for target in targets:
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked (no network)
            continue
        file_part, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(resolved):
            broken.append(f"{target}: no file {os.path.relpath(resolved, ROOT)}")
        elif anchor and resolved.endswith(".md") and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {os.path.relpath(resolved, ROOT)}")
    assert not broken, f"{page}: broken links:\n" + "\n".join(broken)


def _cli_options():
    """``({command: {option strings}}, {global option strings})`` of the keras-vae parser."""
    from keras_vae.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = {name: set(sub._option_string_actions) for name, sub in subparsers.choices.items()}
    return commands, set(parser._option_string_actions)


def _commands_in(text):
    """Every ``keras-vae ...`` command line of ``text``: inline code spans and lines of shell blocks."""
    blocks, _ = extract_blocks(text)
    lines = [c for c in _inline_code(text) if c.startswith("keras-vae ")]
    for b in blocks:
        if b.language in ("bash", "sh"):
            lines += [line for line in b.code.replace("\\\n", " ").splitlines() if "keras-vae " in line]
    return lines


@pytest.mark.parametrize("page", PAGES)
def test_commands_use_existing_flags(page):
    commands, global_options = _cli_options()
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = f.read()
    wrong = []
    for line in _commands_in(text):
        for found in re.finditer(r"keras-vae((?:[ \t]+[^\s#|;&`)]+)*)", line.split(" # ")[0]):
            tokens = shlex.split(found[1].replace("$(", "").replace("'", ""), posix=True) if found[1] else []
            while tokens and tokens[0] in global_options:
                tokens.pop(0)
            if not tokens or not tokens[0].islower():
                continue  # `keras-vae --version`, or a placeholder such as COMMAND
            command, *rest = tokens
            if command not in commands:
                wrong.append(f"{line.strip()}: no command {command!r}")
                continue
            for token in rest:
                flag = token.split("=", 1)[0]
                if flag.startswith("-") and flag not in commands[command] | global_options:
                    wrong.append(f"{line.strip()}: {command} has no option {flag}")
    assert not wrong, f"{page}:\n" + "\n".join(wrong)


def test_cli_page_has_every_command_and_only_its_flags():
    commands, global_options = _cli_options()
    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as f:
        sections = re.split(r"^## ", f.read(), flags=re.M)
    documented = {}
    for section in sections[1:]:
        title = section.splitlines()[0]
        named = re.match(r"`keras-vae ([a-z-]+)", title)
        if named:
            documented[named[1]] = section
    assert sorted(documented) == sorted(commands)
    wrong = [f"{name}: {flag}" for name, section in documented.items()
             for flag in re.findall(r"`(--[a-z][a-z0-9-]*)", section)
             if flag not in commands[name] | global_options]
    assert not wrong, "docs/cli.md names options its commands do not have:\n" + "\n".join(wrong)


def test_variants_table_lists_the_declared_variants_and_options():
    from keras_vae import names

    with open(os.path.join(ROOT, "docs", "models.md"), encoding="utf-8") as f:
        text = f.read()
    table = re.search(r"^\| variant \|.*?\n((?:\|.*\n)+)", text, flags=re.M)
    assert table, "docs/models.md has no table headed '| variant |'"
    rows = [row.strip("|").split("|") for row in table[1].splitlines()[1:]]
    documented = [(cells[0].strip().strip("`"), re.findall(r"`(\w+)`", cells[-1])) for cells in rows]
    assert documented == [(name, list(options)) for name, _, options in names.variant_table()]


# ------------------------------------------------------------------------------------------ the runner itself
def test_extractor_finds_python_bash_and_sh_and_ignores_output():
    text = ("Intro\n\n```python\nx = 1\n```\n\n```bash\necho hi\n```\n\n```sh\ntrue\n```\n\n"
            "```text\nnot run\n```\n\n```console\n$ keras-vae --version\n```\n\n  ~~~python\n  y = 2\n  ~~~\n")
    blocks, problems = extract_blocks(text, "p.md")
    assert problems == []
    assert [(b.line, b.language, b.runs) for b in blocks] == [
        (3, "python", True), (7, "bash", True), (11, "sh", True), (15, "text", False), (19, "console", False),
        (23, "python", True)]
    assert blocks[0].code == "x = 1\n" and blocks[-1].code == "y = 2\n"


def test_fence_without_language_is_refused():
    _, problems = extract_blocks("```\nls\n```\n", "p.md")
    assert problems and "without a language" in problems[0]


@pytest.mark.parametrize("reason, accepted", [
    ("needs a network: downloads MNIST", True), ("needs a GPU", True), ("long run: about 5 minutes", True),
    ("flaky", False), (None, False), ("too slow for me", False)])
def test_skip_marker_needs_an_accepted_reason(reason, accepted):
    marker = "<!-- docs-test: skip -->" if reason is None else f"<!-- docs-test: skip ({reason}) -->"
    blocks, problems = extract_blocks(f"{marker}\n```bash\nexit 1\n```\n", "p.md")
    assert blocks[0].action == "skip"
    assert (problems == []) is accepted, problems


def test_marker_must_sit_on_the_line_before_a_fence():
    _, problems = extract_blocks("<!-- docs-test: skip (long run) -->\n\nSome text.\n```bash\ntrue\n```\n", "p.md")
    assert problems and "not followed by a fence" in problems[0]


def test_malformed_page_fails_before_running(tmp_path):
    page = _write(tmp_path, "```bash\ntouch ran\n```\n\n<!-- docs-test: skip (slow) -->\n```bash\ntrue\n```\n")
    with pytest.raises(DocsError, match="accepted reason"):
        run_page(page, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "work" / "ran").exists()


@pytest.mark.parametrize("language, code", [("bash", "echo before\nfalse\necho after"),
                                            ("sh", "ls | grep nothing-here"),
                                            ("python", "print('before')\nraise ValueError('broken example')")])
def test_page_with_a_failing_block_fails(tmp_path, language, code):
    page = _write(tmp_path, f"# T\n\n```bash\ntrue\n```\n\n```{language}\n{code}\n```\n\n```bash\ntouch later\n```\n")
    with pytest.raises(DocsError) as failure:
        run_page(page, str(tmp_path / "run"))
    assert f"page.md:7: the {language} block" in str(failure.value)
    assert not (tmp_path / "run" / "work" / "later").exists()  # the page stops at its first failure
    if language == "python":
        assert "broken example" in str(failure.value) and 'page.md", line 9' in str(failure.value)


def test_blocks_share_a_directory_and_python_blocks_a_namespace(tmp_path):
    page = _write(tmp_path, "```python\nvalue = 41\nopen('made.txt', 'w').write('x')\n```\n\n"
                            "```bash\ntest -f made.txt\necho \"$PATH\" > path.txt\n```\n\n"
                            "<!-- docs-test: file (settings.yaml) -->\n```yaml\nepochs: 1\n```\n\n"
                            "```python\nassert value + 1 == 42\nassert open('settings.yaml').read() == 'epochs: 1\\n'\n```\n\n"
                            "<!-- docs-test: skip (needs a network: example) -->\n```bash\nexit 1\n```\n")
    result = run_page(page, str(tmp_path / "run"))
    assert result.ran == 3 and [line for line, _ in result.skipped] == [22]
    assert (tmp_path / "run" / "work" / "path.txt").read_text().startswith(os.path.dirname(sys.executable) + os.pathsep)


def test_background_block_serves_later_blocks_and_is_stopped(tmp_path):
    port = 8123
    page = _write(tmp_path, f"<!-- docs-test: background (until http://127.0.0.1:{port}/ answers) -->\n"
                            f"```bash\necho $$ > server.pid\nexec python3 -m http.server {port} --bind 127.0.0.1\n```\n\n"
                            f"```bash\ncurl -sf http://127.0.0.1:{port}/server.pid > fetched.txt\n```\n\n"
                            f"```python\nimport urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/').read()\n```\n")
    result = run_page(page, str(tmp_path / "run"))
    assert result.ran == 3
    work = tmp_path / "run" / "work"
    pid = int((work / "server.pid").read_text())
    assert (work / "fetched.txt").read_text().strip() == str(pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid):
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pid}") or "Z" in _state(pid), "the background server still runs"


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_background_ports_are_replaced_by_free_ones(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]  # taken: the page must get another one
    try:
        page = _write(tmp_path, f"<!-- docs-test: background (until http://127.0.0.1:{port}/ answers) -->\n"
                                f"```bash\nexec python3 -m http.server {port} --bind 127.0.0.1\n```\n\n"
                                f"```bash\necho {port} > port.txt\ncurl -sf http://127.0.0.1:{port}/port.txt\n```\n")
        run_page(page, str(tmp_path / "run"))
        assert (tmp_path / "run" / "work" / "port.txt").read_text().strip() != str(port)
    finally:
        busy.close()


def test_background_block_that_never_answers_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.docs_runner.READY_TIMEOUT", 3)
    page = _write(tmp_path, f"<!-- docs-test: background (until http://127.0.0.1:{free_port()}/ answers) -->\n"
                            "```bash\nsleep 60\n```\n")
    with pytest.raises(DocsError, match="did not make .* answer"):
        run_page(page, str(tmp_path / "run"))


def test_every_page_is_well_formed():
    for page in PAGES:
        page_blocks(os.path.join(ROOT, page))  # raises naming every malformed fence and marker
