"""Kernels: the fused ops' implementations (reference, fast CPU, CUDA) and the dispatch that picks one."""
