"""What a user sees while work runs: TensorFlow's chatter kept off the terminal (`terminal`) and a sweep's
progress lines (`progress`)."""

__all__ = ["progress", "terminal"]
