"""What TensorBoard shows of a run and a sweep: the report written after a run (`report`), HParams sessions
(`hparams`), summaries written as protos (`summaries`), serving TensorBoard on a folder (`serve`), and
showing it in a notebook's cell (`inline`)."""

__all__ = ["hparams", "inline", "report", "serve", "summaries"]
