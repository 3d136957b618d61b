"""What a user sees while work runs and after: TensorFlow's chatter kept off the terminal (`terminal`) and
out of a notebook's cells (`notebook`), a sweep's progress (`progress`), a run's live curves (`live`, in a
notebook only), results rendered as text and HTML (`render`), and one output redrawn in place
(`shown`)."""

__all__ = ["live", "notebook", "progress", "render", "shown", "terminal"]
