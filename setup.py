from setuptools import find_packages, setup

setup(
    name="tinygrad-tx",
    version="0.1.0",
    description="A from-scratch reverse-mode autograd engine for learning and checking backpropagation in transformers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["tinygrad_tx", "tinygrad_tx.*", "models", "models.*", "train", "train.*",
                                    "bench", "bench.*"]),
    install_requires=["numpy>=1.24", "matplotlib>=3.6", "tqdm>=4.60", "PyYAML>=6.0"],
    extras_require={
        "gpu": ["cupy-cuda12x>=12.0"],
        "test": ["pytest>=7.0", "hypothesis>=6.0", "torch>=2.1"],
        # tests/cuda_emulation: NVRTC compile checks and the PTX interpreter (no GPU needed; docs/gpu.md)
        "cuda-emulation": ["cupy-cuda12x>=13.0", "nvidia-cuda-nvrtc-cu12>=12.0"],
    },
)
