"""The blocks of the docs pages on models and exports run as written (tests/docs_runner.py); tests/test_docs.py
runs the other pages and checks links, flags and the variants table. Two files, so that
``pytest -n 2 --dist loadfile`` runs the two halves on two workers."""

import os

import pytest

from tests.docs_runner import run_and_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_HERE = ["docs/export-and-serving.md", "docs/models.md", "docs/studio.md", "docs/tflite.md"]


@pytest.mark.parametrize("page", RUN_HERE)
def test_page_blocks_run(page, tmp_path):
    result = run_and_report(os.path.join(ROOT, page), str(tmp_path))  # a failing block raises DocsError
    assert result.ran >= 1, f"{page}: no block ran"
