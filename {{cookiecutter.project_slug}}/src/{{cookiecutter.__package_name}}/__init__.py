"""{{ cookiecutter.project_name }}: your code. Start in model.py."""
