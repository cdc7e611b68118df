"""The project's documents stand alone: no reference to files outside the repository."""

import glob
import os
import re

from conftest import REPO

DOCUMENTS = [os.path.join(REPO, "README.md"), *glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True),
             *glob.glob(os.path.join(REPO, "tutorial", "*"))]
#: Paths of the machine the project was made on, and the specification it was made from.
OUTSIDE = re.compile(r"shared/|/work/|spec/isonet1|spec §")


def test_documents_cite_nothing_outside_the_repository():
    found = []
    for path in DOCUMENTS:
        with open(path) as handle:
            for number, line in enumerate(handle, 1):
                if OUTSIDE.search(line):
                    found.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()}")
    assert len(DOCUMENTS) > 5 and not found, "\n".join(found)


def test_linked_files_exist():
    """Every relative Markdown link and image of the documents names a file of the repository."""
    missing = []
    for path in DOCUMENTS:
        if not path.endswith(".md"):
            continue
        with open(path) as handle:
            for target in re.findall(r"\]\(([^)#\s]+)\)", handle.read()):
                if "://" not in target and not os.path.exists(os.path.join(os.path.dirname(path), target)):
                    missing.append(f"{os.path.relpath(path, REPO)}: {target}")
    assert not missing, missing


def test_commands_reference_is_generated_from_the_specs():
    """docs/commands.md's parameter reference is today's specs (regenerate: python -m isonet.reference ...)."""
    from isonet.commands import ALL
    from isonet.reference import generated_section, reference_markdown
    with open(os.path.join(REPO, "docs", "commands.md")) as handle:
        section = generated_section(handle.read())
    assert section == reference_markdown(), "run: python -m isonet.reference docs/commands.md"
    for spec in ALL:  # every option of every command is in it, once
        for param in spec.params:
            assert section.count(f"| `{param.name}` |") >= 1
        assert f"### {spec.name}\n" in section
