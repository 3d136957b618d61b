"""One training run and what an epoch means: the epoch's contract, written once for both engines (`epoch`),
the run itself (`train`), its result (`result`), the Keras callbacks it trains with (`callbacks`), Ctrl-C
handling (`stopping`), and the packed engine that steps many sweep trials at once (`pack`, `packed_trial`)."""

__all__ = ["callbacks", "epoch", "pack", "packed_trial", "result", "stopping", "train"]
