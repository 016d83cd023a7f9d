"""Regenerate the table of scenario keys in docs/keys.md from the registry."""

from pathlib import Path

from dipi_abm.config import markdown_table

KEYS = Path(__file__).resolve().parents[1] / "docs" / "keys.md"
START, END = "<!-- keys:start -->", "<!-- keys:end -->"


def main() -> None:
    text = KEYS.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    KEYS.write_text(f"{head}{START}\n{markdown_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
