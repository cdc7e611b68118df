"""Installation of isonet: ``pip install .`` (CPU or GPU TensorFlow), ``pip install .[gpu]`` for CUDA."""

import re

from setuptools import find_packages, setup

with open("isonet/__init__.py") as handle:
    VERSION = re.search(r'__version__ = "([^"]+)"', handle.read()).group(1)

with open("README.md") as handle:
    LONG_DESCRIPTION = handle.read()

setup(
    name="isonet",
    version=VERSION,
    description="Missing-wedge correction and denoising of cryo-electron tomograms with a self-supervised 3D U-Net (IsoNet 1)",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["isonet", "isonet.*"]),
    install_requires=[
        "tensorflow>=2.16",  # Keras 3
        "numpy",
        "scipy",
        "mrcfile",
        "starfile",
        "fire",
        "tqdm",
        # PNG pictures (snapshots, FSC and loss plots); imported only by those features, Agg backend.
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
    },
    # A script, not a console_scripts entry: a generated "isonet.py" would shadow the package.
    scripts=["bin/isonet.py"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
)
