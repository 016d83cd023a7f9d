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
