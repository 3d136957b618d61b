"""What TensorBoard shows of a run and a sweep: the report written after a run (`report`), HParams sessions
(`hparams`), summaries written as protos (`summaries`), and serving TensorBoard on a folder (`serve`)."""

__all__ = ["hparams", "report", "serve", "summaries"]
