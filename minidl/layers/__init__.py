"""Built-in layers."""

from .activations import Activation, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .dense import Dense

__all__ = ["Activation", "Dense", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh"]
