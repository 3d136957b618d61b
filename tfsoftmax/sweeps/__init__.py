"""keras-tuner sweeps: the tuners (`tuners`), the HyperModel (`hypermodel`), packed search (`packing`), ranked
results (`results`), sizes and dry runs (`estimate`), the whole sweep command (`tune`), and keras-tuner's
private API in one adapter (`kt_private`)."""

__all__ = ["estimate", "hypermodel", "kt_private", "packing", "results", "tune", "tuners"]
