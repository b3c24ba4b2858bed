"""Neural-network building blocks: fused functional ops (``functional``), modules and containers."""
