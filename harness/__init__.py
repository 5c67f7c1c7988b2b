"""transfer-harness: LoRA transfer matrices, latent abilities and the source-data traits behind them."""

__version__ = "0.1.0"
