"""The README documents every scenario key exactly as the registry defines it."""

from pathlib import Path

from dipi_abm import config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_key_table_matches_registry():
    text = README.read_text(encoding="utf-8")
    assert config.markdown_table() in text, "regenerate with python tools/update_readme_keys.py"


def test_readme_names_two_quick_start_commands():
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in quick.split("```bash")[1:]]
    assert len(blocks) == 2
    assert "dipi-abm run" in blocks[0]
    assert "pytest" in blocks[1]



def test_model_spec_citations_name_sections_that_exist():
    """The model specification is docs/model.md; the README links it, and every section
    that the README or a docstring cites (as docs/model.md) exists."""
    import re

    root = README.parent
    spec = (root / "docs" / "model.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\d+b?)\.", spec, re.M))
    readme = README.read_text(encoding="utf-8")
    assert "MODEL.md" not in readme and "](docs/model.md)" in readme
    cited = set()
    for text in [readme] + [p.read_text(encoding="utf-8")
                            for p in (root / "dipi_abm").rglob("*.py")]:
        cited |= set(re.findall(r"(?:docs/model|MODEL)\.md\)? (?:sections? |§)(\d+b?)", text))
    assert {"4", "5", "6", "7", "9"} <= cited and cited <= sections, cited - sections
