"""`tfsoftmax bench`, the user's question "how fast is it here": training loops timed per epoch (`loops`) and
side by side (`methods`), a sweep's packed pass against its arithmetic (`packs`), whole processes from
outside (`process`), D2L's costs timed (`costs`), and the report that gathers them (`report`)."""

__all__ = ["costs", "loops", "methods", "packs", "process", "report"]
