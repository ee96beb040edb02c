"""Every curl example of README.md and docs/clients.md runs, in document order, with the real
`curl` against a fresh service (gunicorn with the production config, a fresh database, connected
as the application role), and gets the status its text says. Each document has its own service.

The rule for writers of examples (docs/clients.md and the README repeat it in a comment):
- An example is a command in a ```sh block that starts with `curl`: one plain command, continued
  over lines with a trailing `\\` or inside a quoted argument if need be; no pipes, `;`, `&&`,
  `$(...)` or redirections (`-o FILE` is fine: it runs in a scratch directory). A curl that is
  not such a command, or a curl in a fence of another language, fails this test: nothing is
  skipped silently. Commands of ```sh blocks that do not mention curl (`make run`) are not run.
- Its last line ends with a comment that starts with the HTTP status it gets: `# 201`,
  `# 304 if unchanged`, `# 409 last-owner: acme needs an owner`. The rest is free text.
- It runs after every example above it in its document, on the same database, so a document's
  examples must work as one story: the first user created is id 1, versions count up, a deleted
  user is gone for the examples below.
- It may use `$BASE` (or `http://127.0.0.1:8000`), `$TOKEN` and `$AUTH` (`Authorization:
  Bearer $TOKEN`), a token with every scope; an unset variable fails it (bash's `set -u`).
- `NEXT_CURSOR` stands for the `next_cursor` of the answer to the example just above it: the
  harness substitutes it, and fails when that answer has none. Cursors are opaque, so the text
  cannot show a real one.
- A long poll's `wait=N` (the change feed) is lowered to `wait=1` when N is larger, to keep the
  suite fast: an empty page then comes after a second instead of N, with the same 200.
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import TOKEN

ROOT = Path(__file__).parent.parent
DOCUMENTS = ["README.md", "docs/clients.md"]
WRITTEN_BASE = "http://127.0.0.1:8000"
CURL = re.compile(r"\bcurl\s")
STATUS_COMMENT = re.compile(r"#\s*([1-5]\d\d)\b")
# The real curl, writing the status after the answer (curl's -w turns `\n` into a newline).
CURL_WITH_STATUS = (
    "curl() { command curl --max-time 15 --write-out '\\nHTTP_STATUS=%{http_code}' \"$@\"; }"
)


class ExampleError(Exception):
    """An example the harness cannot run as written (reported with its line)."""


@dataclass
class Example:
    line: int  # where the command starts in its document (1-based)
    command: str  # as written, comment removed
    status: int  # the status its comment states


def fences(text: str):
    """(language, first line number of the content, content) of every fenced code block."""
    lines = text.splitlines(keepends=True)
    start = language = None
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if start is None:
                start, language = number + 1, line[3:].strip()
            else:
                yield language, start, "".join(lines[start - 1 : number - 1])
                start = None
    if start is not None:
        raise ExampleError(f"line {start - 1}: a fence that is never closed")


def shell_commands(block: str, first_line: int):
    """Splits a shell block as bash would: (line, command, comment of its last line, plain),
    where `plain` is False when an operator outside quotes (| ; & < > ` $( ) makes it more than
    one simple command. Comment-only lines are dropped."""
    command = comment = ""
    plain, quote, start, number, i = True, None, None, first_line, 0
    while i < len(block):
        char, step = block[i], 1
        if quote == "'":
            quote = None if char == "'" else quote
        elif quote == '"':
            if char == "\\":
                step = 2
            elif char == '"':
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "\\":  # an escape, or a line continuation
            step = 2
        elif char == "#" and (not command or command[-1].isspace()):
            end = block.find("\n", i)
            end = len(block) if end < 0 else end
            comment, i = block[i:end], end
            continue
        elif char == "\n":
            if command.strip():
                yield start, command.strip(), comment, plain
            command, comment, plain, start = "", "", True, None
            number, i = number + 1, i + 1
            continue
        elif char in "|;&<>`" or block.startswith("$(", i):
            plain = False
        if start is None and not char.isspace():
            start = number
        chunk = block[i : i + step]
        number += chunk.count("\n")
        command += chunk
        i += step
    if quote:
        raise ExampleError(f"line {start}: a quote that is never closed")
    if command.strip():
        yield start, command.strip(), comment, plain


def examples(text: str) -> list[Example]:
    """The curl examples of a Markdown document, in order; ExampleError naming every one that
    breaks the rule of the module's docstring."""
    found, problems = [], []
    for language, start, content in fences(text):
        if language != "sh":
            if CURL.search(content):
                problems.append(f"line {start}: curl in a ```{language} block (use ```sh)")
            continue
        for line, command, comment, plain in shell_commands(content, start):
            if command.startswith("-"):
                problems.append(f"line {line}: a stray argument (a comment ate the `\\` above?)")
            if not CURL.search(command):
                continue
            status = STATUS_COMMENT.match(comment)
            if not command.startswith("curl ") or not plain:
                problems.append(f"line {line}: not one plain curl command: {command[:80]}")
            elif not status:
                problems.append(f"line {line}: no `# <status>` comment on its last line")
            else:
                found.append(Example(line, command, int(status.group(1))))
    if problems:
        raise ExampleError("\n".join(problems))
    return found


def run(example: Example, base: str, previous_output: str, workdir: Path) -> tuple[int, str]:
    """Runs the example with bash and the real curl; its status and what curl printed."""
    command = example.command.replace(WRITTEN_BASE, base)
    command = re.sub(r"\bwait=(\d+)", lambda m: f"wait={min(int(m.group(1)), 1)}", command)
    if "NEXT_CURSOR" in command:
        cursor = re.findall(r'"next_cursor": ?"([^"]+)"', previous_output)
        if not cursor:
            raise ExampleError(f"line {example.line}: NEXT_CURSOR, but the answer above has none")
        command = command.replace("NEXT_CURSOR", cursor[-1])
    result = subprocess.run(
        ["bash", "-c", f"set -u\n{CURL_WITH_STATUS}\n{command}"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "BASE": base,
            "TOKEN": TOKEN,
            "AUTH": f"Authorization: Bearer {TOKEN}",
        },
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
    )
    output, _, status = result.stdout.rpartition("\nHTTP_STATUS=")
    if result.returncode != 0 or not status.isdigit():
        raise ExampleError(
            f"line {example.line}: curl failed ({result.returncode}): {result.stderr.strip()}"
        )
    return int(status), output


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_curl_example_gets_the_status_its_text_says(
    document, start_gunicorn, app_database_url, tmp_path
):
    if not shutil.which("curl"):
        pytest.fail("curl is missing: `make test` installs it (apt-get install curl)")
    try:
        found = examples((ROOT / document).read_text())
    except ExampleError as error:
        pytest.fail(f"{document}:\n{error}")
    assert found, f"{document} has no curl example"
    base, _, _ = start_gunicorn(DATABASE_URL=app_database_url)
    wrong, output = [], ""
    for example in found:
        try:
            status, output = run(example, base, output, tmp_path)
        except ExampleError as error:
            wrong.append(str(error))
            output = ""
            continue
        if status != example.status:
            answer = " ".join(output.split())[:300]
            wrong.append(f"line {example.line}: {status}, not {example.status}: {answer}")
    assert not wrong, f"{document}: examples that do not get their status:\n" + "\n".join(wrong)


RULED = """
Prose with `curl` in it is not an example.

```sh
make run    # not curl: not run
# a comment line
curl -si $BASE/a -H "$AUTH" \\
  -d '{"note": "# not a comment", "x": 1}'   # 201 created
curl -s $BASE/b?x=1#frag -d '{"a":
  "b"}'   # 304 if unchanged
```

```json
{"curl": false}
```
"""


def test_the_rule_finds_each_curl_its_first_line_and_its_status():
    found = examples(RULED)
    assert [(e.line, e.status) for e in found] == [(7, 201), (9, 304)]
    assert found[0].command == (
        'curl -si $BASE/a -H "$AUTH" \\\n  -d \'{"note": "# not a comment", "x": 1}\''
    )
    assert found[1].command.endswith('"b"}\'')


@pytest.mark.parametrize(
    "block, problem",
    [
        ("```sh\ncurl -s $BASE/health\n```", "no `# <status>` comment"),
        ("```sh\ncurl -s $BASE/health   # ok\n```", "no `# <status>` comment"),
        ("```sh\ncurl -s $BASE/a \\\n  -H x   # 200 \\\n  -d y\n```", "a stray argument"),
        ("```sh\ncurl -s $BASE/health | jq .   # 200\n```", "not one plain curl"),
        ("```sh\nX=$(curl -s $BASE/health)   # 200\n```", "not one plain curl"),
        ("```sh\ncurl -s $BASE/a; curl -s $BASE/b   # 200\n```", "not one plain curl"),
        ("```bash\ncurl -s $BASE/health   # 200\n```", "curl in a ```bash block"),
        ("```sh\ncurl -s $BASE/a -d '{   # 200\n```", "a quote that is never closed"),
        ("```sh\ncurl -s $BASE/health   # 200\n", "a fence that is never closed"),
    ],
)
def test_a_curl_the_harness_cannot_run_as_written_fails(block, problem):
    with pytest.raises(ExampleError, match=re.escape(problem)):
        examples(block)
