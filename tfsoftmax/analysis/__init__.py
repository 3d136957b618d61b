"""Finished runs compared outside TensorBoard: runs read back (`runs`), their table and curves (`compare`),
calibration and selective prediction (`calibration`), and every matplotlib figure (`figures`)."""

__all__ = ["calibration", "compare", "figures", "runs"]
