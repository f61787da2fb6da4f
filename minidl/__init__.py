"""minidl: a small deep-learning framework on NumPy whose back-passes are verified.

Every layer, loss and model has an explicit ``forward`` and ``backward``;
:class:`GradientChecker` proves the back-pass right by central differences, tensor by tensor.
"""

from .errors import (
    BackwardBeforeForwardError,
    CheckpointError,
    DTypeError,
    GradientCheckError,
    MinidlError,
    NonDeterministicError,
    NonFiniteError,
    ShapeError,
    StateDictError,
)
from .gradcheck import GradientChecker, GradientReport, TensorResult
from .layer import Layer, LoadResult
from .layers import (
    GELU,
    Activation,
    AvgPool2D,
    BatchNorm1d,
    BatchNorm2d,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LayerNorm,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HalfSquaredError,
    HuberLoss,
    L1Loss,
    Loss,
    MSELoss,
    TargetError,
)
from .model import LayerList, Model, Sequential
from .optim import SGD, Optimizer
from .parameter import Parameter
from .serialization import load, save

__version__ = "0.1.0"

__all__ = [
    "GELU",
    "SGD",
    "Activation",
    "AvgPool2D",
    "BCEWithLogitsLoss",
    "BackwardBeforeForwardError",
    "BatchNorm1d",
    "BatchNorm2d",
    "CheckpointError",
    "Conv2D",
    "CrossEntropyLoss",
    "DTypeError",
    "Dense",
    "Dropout",
    "Flatten",
    "GradientCheckError",
    "GradientChecker",
    "GradientReport",
    "HalfSquaredError",
    "HuberLoss",
    "L1Loss",
    "Layer",
    "LayerList",
    "LayerNorm",
    "LeakyReLU",
    "LoadResult",
    "Loss",
    "MSELoss",
    "MaxPool2D",
    "MinidlError",
    "Model",
    "NonDeterministicError",
    "NonFiniteError",
    "Optimizer",
    "Parameter",
    "ReLU",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "Softmax",
    "StateDictError",
    "Tanh",
    "TargetError",
    "TensorResult",
    "load",
    "save",
]
