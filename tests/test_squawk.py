"""Every migration passes squawk, PostgreSQL's migration linter, configured by the repository's
.squawk.toml, as `squawk migrations/*.sql` run from the root does: each finding is fixed, or
turned off right above its statement (`-- squawk-ignore RULE`) under a comment saying why."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQUAWK = Path(sys.executable).parent / "squawk"  # squawk-cli, pinned in setup.cfg
MIGRATIONS = sorted((ROOT / "migrations").glob("*.sql"))


def squawk(*paths: str, cwd: Path = ROOT) -> list[dict]:
    """squawk's findings (its GitLab report: check_name, description, location)."""
    done = subprocess.run(
        [SQUAWK, "--reporter", "gitlab", *paths],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(done.stdout)
    assert done.returncode == (1 if findings else 0), done.stderr
    return findings


def test_every_migration_passes_squawk():
    assert len(MIGRATIONS) >= 18
    findings = squawk(*(str(path.relative_to(ROOT)) for path in MIGRATIONS))
    report = [
        f"{f['location']['path']}:{f['location']['lines']['begin']}: {f['check_name']}: "
        f"{f['description']}"
        for f in findings
    ]
    assert report == []


def test_squawk_with_this_configuration_does_find_a_blocking_migration(tmp_path):
    # The same rules catch what 0002 once was: the lint can fail.
    (tmp_path / "0099.add-index.sql").write_text(
        "CREATE INDEX users_updated_at_idx ON users (updated_at);\n"
    )
    (tmp_path / ".squawk.toml").write_text((ROOT / ".squawk.toml").read_text())
    [finding] = squawk("0099.add-index.sql", cwd=tmp_path)
    assert finding["check_name"] == "require-concurrent-index-creation"


def test_every_ignore_comes_with_its_reason():
    for path in MIGRATIONS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip().startswith("-- squawk-ignore"):
                above = lines[number - 1].strip() if number else ""
                assert above.startswith("--") and "squawk-ignore" not in above, (
                    f"{path.name}:{number + 1}: say why, in a comment right above"
                )
