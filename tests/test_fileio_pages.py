"""A benchmark page written again keeps its hand-written Reading (tripost.fileio.atomic_write_page)."""

from __future__ import annotations

from tripost.fileio import atomic_write_page


def test_a_new_page_is_the_text_alone(tmp_path):
    page = tmp_path / "docs" / "bench.md"  # the folder is made
    atomic_write_page(page, "# Bench\n\n| a |\n")
    assert page.read_text() == "# Bench\n\n| a |\n"


def test_rewriting_keeps_the_reading_and_replaces_the_tables(tmp_path):
    page = tmp_path / "bench.md"
    page.write_text("# Bench\n\n| old |\n\n## Reading (machine X)\n\nWhat the figures mean.\n")
    atomic_write_page(page, "# Bench\n\n| new |")
    assert page.read_text() == "# Bench\n\n| new |\n\n## Reading (machine X)\n\nWhat the figures mean.\n"
    # written again: still one Reading
    atomic_write_page(page, "# Bench\n\n| newer |\n")
    assert page.read_text().count("## Reading") == 1 and "| newer |" in page.read_text()


def test_a_page_without_a_reading_is_replaced_whole(tmp_path):
    page = tmp_path / "bench.md"
    page.write_text("# Bench\n\n| old |\n\n## Notes\n\nnot kept\n")
    atomic_write_page(page, "# Bench\n\n| new |\n")
    assert page.read_text() == "# Bench\n\n| new |\n"
