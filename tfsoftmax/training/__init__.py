"""One training run and what an epoch means: the epoch's contract, written once for both engines (`epoch`),
the run itself (`train`), its result (`result`), the Keras callbacks it trains with (`callbacks`), Ctrl-C
handling (`stopping`), and the packed engine that steps many sweep trials at once (`pack`, `packed_trial`),
a lane of them per core (`lane`), and trains a run as a pack of one (`packed_fit`), its compiled packs
kept in the process (`compiled_packs`) and their XLA programs between processes (`compile_cache`)."""

__all__ = [
    "callbacks",
    "compile_cache",
    "compiled_packs",
    "epoch",
    "lane",
    "pack",
    "packed_fit",
    "packed_trial",
    "result",
    "stopping",
    "train",
]
