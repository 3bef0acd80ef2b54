"""``skillmaker upgrade``: three-way merges, conflicts, --check, refusals and the commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from skillmaker import __version__
from skillmaker.config.model import CiConfig, SkillConfig
from tests.scaffold.conftest import edit, git, manifest_files, run_cli, snapshot, tree

TIMEOUT_12 = "timeout(time: 12, unit: 'HOURS')"


def _commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def _user_files(repo: Path) -> dict[str, bytes]:
    owned = set(manifest_files(repo))
    return {
        name: data
        for name, data in snapshot(repo).items()
        if name not in owned and not name.startswith(".skillmaker/")
    }


def test_upgrade_rewrites_untouched_files_and_commits(
    car_repo: Path, changed_template: Path
) -> None:
    (car_repo / "my-notes.md").write_text("user file")
    before = _user_files(car_repo)
    edit(
        changed_template / "Dockerfile.cpu",
        "FROM runtime AS serving",
        "FROM runtime AS serving\nLABEL skill.upgraded=true",
    )
    (changed_template / "Makefile").write_text("# {{ cookiecutter.__header }}\n")
    (changed_template / ".dockerignore").unlink()

    code, out, err = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 0, err
    assert "Dockerfile.cpu: rewritten" in out
    assert "Makefile: added" in out
    assert ".dockerignore: removed" in out
    assert "LABEL skill.upgraded=true" in (car_repo / "Dockerfile.cpu").read_text()
    assert not (car_repo / ".dockerignore").exists()
    files = manifest_files(car_repo)
    assert "Makefile" in files and ".dockerignore" not in files
    assert _user_files(car_repo) == before, "user files must be byte-identical"
    # One commit, whose message lists what changed; the base copies follow the new render.
    message = git(car_repo, "log", "-1", "--format=%B")
    assert message.startswith(f"Upgrade skill vw-golf-variant to skillmaker {__version__}")
    assert "Dockerfile.cpu: rewritten" in message and "Makefile: added" in message
    assert git(car_repo, "status", "--porcelain") == "?? my-notes.md\n"
    bases = {p.name for p in (car_repo / ".skillmaker/base").iterdir()}
    assert bases == set(files.values())

    code, out, _ = run_cli("upgrade", "--repo", str(car_repo))
    assert (code, out.strip()) == (0, f"up to date with skillmaker {__version__}")
    assert git(car_repo, "rev-list", "--count", "HEAD").strip() == "2"


def test_upgrade_merges_a_hand_edit_with_a_template_change(
    car_repo: Path, changed_template: Path
) -> None:
    jenkinsfile = car_repo / "Jenkinsfile"
    edit(jenkinsfile, TIMEOUT_12, "timeout(time: 4, unit: 'HOURS')")
    edit(
        car_repo / "README.md",
        "## Run it locally",
        "## Known issues\nBlurry night photos.\n\n## Run it locally",
    )
    _commit(car_repo, "Four hours is plenty; known issues")
    edit(changed_template / "Jenkinsfile", "PYTHONUNBUFFERED = '1'", "PYTHONUNBUFFERED = '0'")
    edit(changed_template / "README.md", "## Where things go", "## Where things are")

    code, out, err = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 0, err
    assert "Jenkinsfile: merged with your edits" in out
    assert "README.md: merged with your edits" in out
    text = jenkinsfile.read_text()
    assert "timeout(time: 4, unit: 'HOURS')" in text and "PYTHONUNBUFFERED = '0'" in text
    readme = (car_repo / "README.md").read_text()
    assert "## Known issues\nBlurry night photos." in readme and "## Where things are" in readme
    assert "<<<<<<<" not in text + readme
    assert git(car_repo, "status", "--porcelain") == ""
    # The user's edit survives the next upgrade too (the new base is the new render).
    code, out, _ = run_cli("upgrade", "--repo", str(car_repo), "--check")
    assert code == 0, out


def test_a_real_conflict_is_marked_inline_listed_and_exits_2(
    car_repo: Path, changed_template: Path
) -> None:
    edit(car_repo / "Jenkinsfile", TIMEOUT_12, "timeout(time: 4, unit: 'HOURS')")
    _commit(car_repo, "Four hours")
    head = git(car_repo, "rev-parse", "HEAD")
    edit(changed_template / "Jenkinsfile", "timeout(time: {{", "timeout(activity: true, time: {{")
    edit(
        changed_template / "Dockerfile.gpu",
        "FROM runtime AS serving",
        "FROM runtime AS serving\nLABEL x=y",
    )

    code, out, _ = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 2
    assert "Jenkinsfile: CONFLICT: resolve the <<<<<<< markers" in out
    assert "1 conflict(s): resolve the markers, then commit" in out
    text = (car_repo / "Jenkinsfile").read_text()
    assert (
        "<<<<<<< Jenkinsfile (yours)\n        timeout(time: 4, unit: 'HOURS')\n=======\n"
        "        timeout(activity: true, time: 12, unit: 'HOURS')\n>>>>>>> Jenkinsfile (skillmaker"
    ) in text
    assert text.count("<<<<<<<") == 1  # only the line both changed
    assert "LABEL x=y" in (car_repo / "Dockerfile.gpu").read_text()
    assert git(car_repo, "rev-parse", "HEAD") == head  # left for the user to resolve and commit

    # Committed with the markers still in: --check keeps failing until they are resolved.
    _commit(car_repo, "oops, committed the markers")
    code, out, _ = run_cli("upgrade", "--repo", str(car_repo), "--check")
    assert code == 1
    assert "would change: Jenkinsfile: UNRESOLVED: conflict markers of an earlier upgrade" in out


def test_readme_notes_section_is_never_touched(car_repo: Path, changed_template: Path) -> None:
    notes = "<!-- skillmaker:notes:end -->"
    edit(car_repo / "README.md", notes, "Known issues: glare.\n" + notes)
    _commit(car_repo, "notes")
    edit(changed_template / "README.md", "## Notes\n", "## Notes of the owners\n")
    edit(changed_template / "README.md", "-->\n" + notes, "-->\nWrite notes here.\n" + notes)

    code, out, err = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 0, out + err
    readme = (car_repo / "README.md").read_text()
    assert "## Notes of the owners" in readme
    assert "Known issues: glare.\n" + notes in readme and "Write notes here." not in readme


def test_check_exits_1_when_out_of_date_and_writes_nothing(
    car_repo: Path, changed_template: Path
) -> None:
    code, out, _ = run_cli("upgrade", "--repo", str(car_repo), "--check")
    assert code == 0, out
    edit(
        changed_template / "Dockerfile.cpu",
        "FROM runtime AS serving",
        "FROM runtime AS serving\nLABEL a=b",
    )
    (car_repo / "README.md").write_text("dirty but --check does not mind\n")
    before = snapshot(car_repo)
    code, out, _ = run_cli("upgrade", "--repo", str(car_repo), "--check")
    assert code == 1
    assert "would change: Dockerfile.cpu: rewritten" in out
    assert "out of date: run `skillmaker upgrade`" in out
    assert snapshot(car_repo) == before


def test_upgrade_refuses_a_dirty_tree(car_repo: Path, changed_template: Path) -> None:
    edit(car_repo / "Jenkinsfile", TIMEOUT_12, "timeout(time: 4, unit: 'HOURS')")
    before = snapshot(car_repo)
    code, _, err = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 2
    assert "uncommitted changes (Jenkinsfile): commit or stash them before upgrading" in err
    assert snapshot(car_repo) == before


def test_upgrade_refuses_a_downgrade(car_repo: Path) -> None:
    path = car_repo / ".skillmaker/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["skillmaker_version"] = "99.0.0"
    path.write_text(json.dumps(manifest))
    _commit(car_repo, "from the future")
    before = snapshot(car_repo)
    for flags in ((), ("--check",)):
        code, _, err = run_cli("upgrade", "--repo", str(car_repo), *flags)
        assert code == 2
        assert f"stamped by skillmaker 99.0.0, newer than this {__version__}" in err
    assert snapshot(car_repo) == before


def test_force_overwrites_hand_edits_and_says_so(car_repo: Path, changed_template: Path) -> None:
    edit(car_repo / "Jenkinsfile", TIMEOUT_12, "timeout(time: 4, unit: 'HOURS')")
    _commit(car_repo, "Four hours")
    edit(changed_template / "Jenkinsfile", "numToKeepStr: '50'", "numToKeepStr: '80'")
    code, out, err = run_cli("upgrade", "--repo", str(car_repo), "--force")
    assert code == 0, err
    assert "Jenkinsfile: edited by hand, overwritten (--force)" in out
    assert TIMEOUT_12 in (car_repo / "Jenkinsfile").read_text()
    assert "overwritten (--force)" in git(car_repo, "log", "-1", "--format=%B")


def test_upgrade_migrates_an_old_config(car_repo: Path) -> None:
    path = car_repo / "skill.json"
    raw = json.loads(path.read_text())
    raw["schema_version"] = 1
    raw["train"]["patience"] = raw["train"].pop("early_stopping_patience")
    path.write_text(json.dumps(raw, indent=2) + "\n")
    _commit(car_repo, "as stamped by schema 1")

    code, out, _ = run_cli("upgrade", "--repo", str(car_repo), "--check")
    assert code == 1
    line = "skill.json: schema 1 -> 2: train.patience -> train.early_stopping_patience (value 6 carried over)"
    assert "would change: " + line in out
    code, out, err = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 0, err
    migrated = json.loads(path.read_text())
    assert migrated["schema_version"] == 2
    assert migrated["train"]["early_stopping_patience"] == 6 and "patience" not in migrated["train"]
    assert line in git(car_repo, "log", "-1", "--format=%B")
    assert git(car_repo, "status", "--porcelain") == ""


def test_upgrade_outside_a_skill_repo(tmp_path: Path) -> None:
    code, _, err = run_cli("upgrade", "--repo", str(tmp_path))
    assert code == 2
    assert "not a skill repo (no .skillmaker/manifest.json)" in err
    assert tree(tmp_path) == set()


def test_a_file_of_yours_in_the_way_of_a_new_owned_file_is_a_conflict(
    car_repo: Path, changed_template: Path
) -> None:
    (car_repo / "Makefile").write_text("all:\n\techo mine\n")
    _commit(car_repo, "my Makefile")
    (changed_template / "Makefile").write_text("# {{ cookiecutter.__header }}\nall:\n\techo ours\n")
    code, out, _ = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 2
    assert "Makefile: CONFLICT" in out
    text = (car_repo / "Makefile").read_text()
    assert "echo mine" in text and "echo ours" in text and "<<<<<<< Makefile (yours)" in text


def test_a_repo_without_base_copies_merges_from_its_git_history(
    car_repo: Path, changed_template: Path
) -> None:
    # As stamped by a skillmaker that kept no base copies; the render is in the first commit.
    git(car_repo, "rm", "-rq", ".skillmaker/base")
    git(car_repo, "commit", "-qm", "stamped before base copies")
    edit(car_repo / "Jenkinsfile", TIMEOUT_12, "timeout(time: 4, unit: 'HOURS')")
    _commit(car_repo, "Four hours")
    edit(changed_template / "Jenkinsfile", "PYTHONUNBUFFERED = '1'", "PYTHONUNBUFFERED = '0'")

    code, out, err = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 0, out + err
    assert "Jenkinsfile: merged with your edits" in out
    text = (car_repo / "Jenkinsfile").read_text()
    assert "timeout(time: 4, unit: 'HOURS')" in text and "PYTHONUNBUFFERED = '0'" in text
    assert {p.name for p in (car_repo / ".skillmaker/base").iterdir()} == set(
        manifest_files(car_repo).values()
    )


def test_settings_in_skill_json_reach_the_owned_files(car_repo: Path) -> None:
    path = car_repo / "skill.json"
    raw = json.loads(path.read_text())
    raw["ci"] = {"timeout_hours": 4, "agents": {"train": "gpu && a100"}}
    raw["images"]["extra_run"] = ["apt-get update"]
    path.write_text(json.dumps(raw, indent=2) + "\n")
    _commit(car_repo, "Four hours, A100s, apt lists")
    code, out, _ = run_cli("upgrade", "--repo", str(car_repo), "--check")
    assert code == 1 and "would change: Jenkinsfile: rewritten" in out

    code, out, err = run_cli("upgrade", "--repo", str(car_repo))
    assert code == 0, err
    jenkinsfile = (car_repo / "Jenkinsfile").read_text()
    assert "timeout(time: 4, unit: 'HOURS')" in jenkinsfile
    assert "label 'gpu && a100'" in jenkinsfile
    assert (
        '\nRUN ["/bin/sh", "-eu", "-c", "apt-get update"]\n'
        in (car_repo / "Dockerfile.gpu").read_text()
    )
    assert "| `train` | gpu && a100 |" in (car_repo / "README.md").read_text().replace("\\&", "&")
    assert git(car_repo, "status", "--porcelain") == ""


def _rebuild_with_timeout_default(hours: int) -> None:
    CiConfig.model_fields["timeout_hours"].default = hours
    CiConfig.model_rebuild(force=True)
    SkillConfig.model_rebuild(force=True)


def test_a_changed_default_reaches_a_skill_that_never_set_it(car_repo: Path) -> None:
    pinned = car_repo.parent / "pinned"
    raw = json.loads((car_repo / "skill.json").read_text())
    raw["ci"] = {"timeout_hours": 12}
    config = car_repo.parent / "pinned.json"
    config.write_text(json.dumps(raw))
    shutil.copyfile(car_repo / "classes.json", car_repo.parent / "classes.json")
    assert run_cli("new", "--config", str(config), "--output", str(pinned))[0] == 0
    try:
        _rebuild_with_timeout_default(6)  # a new skillmaker with a new default
        code, out, err = run_cli("upgrade", "--repo", str(car_repo))
        assert code == 0, err
        assert "Jenkinsfile: rewritten" in out
        assert "timeout(time: 6, unit: 'HOURS')" in (car_repo / "Jenkinsfile").read_text()
        code, out, _ = run_cli("upgrade", "--repo", str(pinned), "--check")
        assert code == 0, out  # the owner chose 12 hours: that stays
    finally:
        _rebuild_with_timeout_default(12)
