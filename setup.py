import pathlib

from setuptools import find_packages, setup

# pinned, so .ci/run and pre-commit check with the same versions (settings: pyproject.toml)
LINT = ["ruff==0.17.5", "mypy==2.4.1", "types-PyYAML", "types-tqdm"]

# Only the engine is installed. models/, train/ and bench/ are this checkout's programs, run from its root
# (python -m train.shakespeare): as top-level packages named "models", "train" and "bench" in site-packages
# they would collide with any other project's.
setup(
    name="tinygrad-tx",
    version="0.1.0",
    description="A from-scratch reverse-mode autograd engine for learning and checking backpropagation in transformers",
    long_description=pathlib.Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tinygrad_tx", "tinygrad_tx.*"]),
    package_data={"tinygrad_tx": ["py.typed", "*.pyi"]},
    install_requires=[
        "numpy>=1.24",
        "numba>=0.60",  # compiles the fast CPU kernels' loops (tinygrad_tx/kernels/cpu/)
        "matplotlib>=3.6",
        "tqdm>=4.60",
        "PyYAML>=6.0",
        "safetensors>=0.4",
        "jsonargparse>=4.53,<5",
        "graphviz>=0.20",
        "regex>=2022.1",  # GPT-2 pre-tokenizes with Unicode classes (\p{L}, \p{N}): train/gpt2_tokenizer.py
    ],
    extras_require={
        "gpu": ["cupy-cuda12x>=12.0"],
        "hub": ["huggingface_hub>=0.20"],  # GPT.from_pretrained("gpt2") downloads what the cache lacks (docs/gpt2.md)
        "dist": ["mpi4py>=4.0", "mpich>=4.1"],  # data-parallel under mpiexec (docs/distributed.md)
        # transformers: GPT2LMHeadModel, the oracle of GPT.from_pretrained (it needs torch, installed CPU-only first)
        "test": [
            "pytest>=7.0",
            "hypothesis>=6.0",
            "torch>=2.1",
            "threadpoolctl>=3.0",
            "tokenizers>=0.15",
            "transformers>=5.0",
        ],
        # the site (mkdocs.yml) and the notebooks' execution; MathJax comes from jupyter-server-mathjax
        "docs": [
            "mkdocs>=1.6",
            "mkdocs-material>=9.5",
            "mkdocs-jupyter>=0.25",
            "mkdocstrings[python]>=0.26",
            "pymdown-extensions>=10.0",
            "jupyter-server-mathjax>=0.2.6",
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6.0",
        ],
        # tests/cuda_emulation: NVRTC compile checks and the PTX interpreter (no GPU needed; docs/gpu.md)
        "cuda-emulation": ["cupy-cuda12x>=13.0", "nvidia-cuda-nvrtc-cu12>=12.0"],
        "lint": LINT,
        "dev": LINT + ["pre-commit>=3.0"],
    },
)
