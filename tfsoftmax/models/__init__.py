"""The models: D2L's softmax regression built by Keras (`softmax`, the one place a model is built), the
from-scratch model (`scratch`) and its hand-written ops, naive next to stable (`ops`)."""

__all__ = ["ops", "scratch", "softmax"]
