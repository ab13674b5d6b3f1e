"""README.md's declaration tables match model.py (`make docs` rewrites them)."""

from pathlib import Path

from sagemaker_contract.adapter import load_user_module
from sagemaker_tools.readme_tables import updated

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_tables_match_the_declaration():
    readme = README.read_text()
    assert updated(readme, load_user_module(())) == readme, "README.md's tables are out of date: run `make docs`"
