"""The run directory, owned here alone: its layout and record schema (`layout`), per-epoch checkpoints and
what a resume may continue from (`checkpoint`), and the provenance each run keeps (`environment`)."""

__all__ = ["checkpoint", "environment", "layout"]
