"""Built-in layers."""

from .activations import GELU, Activation, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AvgPool2D, MaxPool2D
from .reshape import Flatten

__all__ = [
    "GELU",
    "Activation",
    "AvgPool2D",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "LayerNorm",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
