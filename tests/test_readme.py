"""The README is short and its links lead somewhere; the reference in docs/ documents
every scenario key exactly as the registry defines it."""

import re
from pathlib import Path

from dipi_abm import config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: Written with other parts of the project; linked from here, checked once they exist.
ELSEWHERE = {"ledger.md", "dashboard.md", "findings.md", "robustness.md", "profiles.md"}
QUICK_START = [
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/dipi-abm run --out results",
    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest',
]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_keys_table_matches_registry():
    text = (DOCS / "keys.md").read_text(encoding="utf-8")
    assert config.markdown_table() in text, "regenerate with python tools/update_readme_keys.py"


def test_readme_is_short_and_keeps_the_two_quick_start_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert [b.strip() for b in _blocks(quick, "bash")] == QUICK_START  # CI runs them literally


def test_readme_example_is_the_tutorials():
    """One worked example, the tutorial's own (which tests/test_tutorial.py runs)."""
    readme, tutorial = (p.read_text(encoding="utf-8") for p in (README, DOCS / "tutorial.md"))
    assert _blocks(readme, "toml") == _blocks(tutorial, "toml")[:1]
    commands = [ln for b in _blocks(tutorial, "bash") for ln in b.splitlines()]
    assert [ln for b in _blocks(readme, "bash")[2:] for ln in b.splitlines()] == commands
    shown = _blocks(tutorial, "text")[0].splitlines()
    assert all(ln in shown for ln in _blocks(readme, "text")[0].splitlines())


def test_links_lead_to_files_and_sections_that_exist():
    pages = [README, *sorted(DOCS.glob("*.md")), ROOT / "experiments" / "README.md"]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if file.name in ELSEWHERE and not file.exists():
                continue
            assert file.exists(), f"{page.name}: {target}"
            if anchor and file.suffix == ".md":
                heads = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), re.M)
                slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}
                assert anchor in slugs, f"{page.name}: {target}"


def test_model_spec_citations_name_sections_that_exist():
    """The model specification is docs/model.md; the README links it, and every section
    that the README, the docs or a docstring cites (as docs/model.md) exists."""
    spec = (DOCS / "model.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\d+b?)\.", spec, re.M))
    readme = README.read_text(encoding="utf-8")
    assert "MODEL.md" not in readme and "](docs/model.md)" in readme
    cited = set()
    texts = [readme, *(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")),
             *(p.read_text(encoding="utf-8") for p in (ROOT / "dipi_abm").rglob("*.py"))]
    for text in texts:
        cited |= set(re.findall(r"(?:docs/model|MODEL)\.md\)? (?:sections? |§)(\d+b?)", text))
    assert {"4", "5", "6", "7", "9"} <= cited and cited <= sections, cited - sections
