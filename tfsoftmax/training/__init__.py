"""One training run and what an epoch means: the run itself (`train`), its result (`result`), the Keras
callbacks it trains with (`callbacks`), Ctrl-C handling (`stopping`), and the packed engine that steps many
sweep trials at once (`pack`, `packed_trial`)."""

__all__ = ["callbacks", "pack", "packed_trial", "result", "stopping", "train"]
