"""Sweeps across processes on keras-tuner's distributed mode: the launcher of a chief and its workers
(`launcher`), the leases that hand a dead worker's trials on (`lease`), and the config fingerprint that keeps
another sweep's workers out (`fingerprint`)."""

__all__ = ["fingerprint", "launcher", "lease"]
