"""This project's own module (the one the user edits), product and framework; written once by the template."""

USER_MODULE = "{{ cookiecutter.__package_name }}.model"
PRODUCT = "{{ cookiecutter.product }}"  # "algorithm" (train and serve) or "model" (serve only)
FRAMEWORK = "{{ cookiecutter.framework }}"
ACCELERATOR = "{{ cookiecutter.accelerator }}"  # "cpu", or "gpu" (framework onnx: the CUDA execution provider)
