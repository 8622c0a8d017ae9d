"""Packaging for tfrs_negatives."""

from setuptools import find_packages, setup

# The stack that works together (see README, "Pinned stack"): ScaNN's TF ops are
# built against exactly one TensorFlow minor, and TFRS needs Keras 2 (tf-keras).
STACK = [
    "tensorflow==2.20.*",
    "tf-keras==2.20.*",
    "tensorflow-recommenders==0.7.7",
    "tensorflow-datasets==4.9.*",
    "importlib_resources",
    "numpy>=1.26",
    "matplotlib>=3.8",  # the picture of `tfrs-negatives compare`
]

setup(
    name="tfrs_negatives",
    version="0.1.0",
    description=(
        "Negatives for TensorFlow Recommenders retrieval: log-Q correction with "
        "streaming frequency estimation, mixed and hard negatives."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["tfrs_negatives", "tfrs_negatives.*"]),
    install_requires=STACK,
    entry_points={
        "console_scripts": ["tfrs-negatives=tfrs_negatives.experiments.compare:main_exit"],
    },
    extras_require={
        "scann": ["scann[tf]==1.4.2"],
        "beam": ["apache-beam[gcp]==2.77.*"],  # resolves with TF 2.20 and protobuf 6.33
        "test": [
            "pytest>=8",
            "pytest-xdist==3.8.*",  # the suite on both cores (scripts/test.sh: -n 2)
            "scipy>=1.11",
            "ruff==0.17.*",
            "scann[tf]==1.4.2",
            "apache-beam[gcp]==2.77.*",
        ],
    },
    license="Apache-2.0",
)
