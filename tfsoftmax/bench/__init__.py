"""`tfsoftmax bench`, the user's question "how fast is it here": training loops timed per epoch (`loops`),
whole processes from outside (`process`), and the command that reports them (`command`)."""

__all__ = ["command", "loops", "process"]
