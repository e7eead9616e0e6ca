"""Package layout only; all metadata lives in pyproject.toml.

prompts/ sits at the repository's top level (see docs/design.md) but must ship
inside the wheel, so it is mapped to the package `tripost._prompts` and read
through importlib.resources at run time (tripost/paths.py).
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tripost", "tripost.*"]) + ["tripost._prompts"],
    package_dir={"tripost._prompts": "prompts"},
    package_data={
        "tripost._prompts": ["*.txt", "*.md", "*.json", "**/*.txt", "**/*.md", "**/*.json"],
        "tripost.tasks": ["data/*.txt", "data/*.json"],
    },
    include_package_data=False,
)
