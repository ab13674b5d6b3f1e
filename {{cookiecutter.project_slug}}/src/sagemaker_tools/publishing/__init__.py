"""Publishing, run on your machine (not in the image): `make push` and `make publish`.

    python -m sagemaker_tools push [--registry HOST:PORT] [--tag TAG] [--latest] [--force]
    python -m sagemaker_tools publish [--dry-run]

One declaration drives everything: the hyperparameters, channels and metrics in your model.py
(through `describe`), the content types the server speaks (sagemaker_contract.formats, with the
project's own), and the listing settings in pyproject.toml's [tool.sagemaker]. Every request is
checked against the SageMaker service model botocore ships before anything is sent.
"""


class PublishError(Exception):
    """Something stops push or publish. Each line says what, why, and what to do."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)
