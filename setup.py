"""Installable package for cardiofm: a multimodal foundation model for cardiac signals."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

INSTALL_REQUIRES = [
    "torch>=2.3,<3",
    "transformers>=5.0,<6",
    "accelerate>=1.2,<2",
    "timm>=1.0,<2",
    "einops>=0.8,<1",
    "datasets>=3.2,<6",
    "sentencepiece>=0.2,<0.3",
    "deepspeed>=0.16,<0.20",
    "wfdb>=4.1,<5",
    "scipy>=1.11,<2",
    "numpy>=1.26,<3",
    "pandas>=2.1,<4",
    "h5py>=3.10,<4",
    "safetensors>=0.4,<1",
    "huggingface_hub>=1.0,<3",
    "tqdm>=4.66,<5",
    "matplotlib>=3.8,<4",
    "scikit-learn>=1.4,<2",
    "pyyaml>=6.0,<7",
    "tensorboard>=2.15,<3",
]

EXTRAS = {
    "dev": ["pytest>=8,<10", "pytest-timeout>=2.3,<3", "neurokit2>=0.2.10,<0.3"],
    "bench": ["neurokit2>=0.2.10,<0.3"],
}

setup(
    name="cardiofm",
    version="0.1.0",
    description="Multimodal masked-transformer foundation model for ECG, PPG and report text",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["cardiofm", "cardiofm.*"]),
    py_modules=["cardiofm_torchvision_guard"],
    package_data={"cardiofm": ["models/presets/*.json", "data/resources/*", "configs/*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["cardiofm=cardiofm.cli.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
