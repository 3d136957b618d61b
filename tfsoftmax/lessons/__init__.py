"""D2L's exercises measured: where exp and the naive softmax break in each float format (`numerics`), and
what a naive loss and many classes cost (`costs`)."""

__all__ = ["costs", "numerics"]
