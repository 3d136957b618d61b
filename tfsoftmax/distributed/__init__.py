"""Sweeps across processes on keras-tuner's distributed mode: the launcher of a chief and its workers
(`launcher`), the leases and fair shares that spread the trials and hand a dead worker's on (`lease`), the
token that keeps everyone but the sweep's workers out (`token`), and the config fingerprint that keeps
another sweep's workers out (`fingerprint`)."""

__all__ = ["fingerprint", "launcher", "lease", "token"]
