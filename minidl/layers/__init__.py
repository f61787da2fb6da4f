"""Built-in layers."""

from .activations import Activation, ReLU, Sigmoid, Tanh
from .dense import Dense

__all__ = ["Activation", "Dense", "ReLU", "Sigmoid", "Tanh"]
