"""minidl: a small deep-learning framework on NumPy whose back-passes are verified.

Every layer, loss and model has an explicit ``forward`` and ``backward``;
:class:`GradientChecker` proves the back-pass right by central differences, tensor by tensor.
"""

from .clip import clip_grad_norm_, clip_grad_value_
from .early_stopping import EarlyStopping
from .errors import (
    BackwardBeforeForwardError,
    CheckpointError,
    DTypeError,
    GradientCheckError,
    IndexRangeError,
    MinidlError,
    NonDeterministicError,
    NonFiniteError,
    ShapeError,
    StateDictError,
    TargetError,
)
from .gradcheck import GradientChecker, GradientReport, TensorResult
from .layer import Layer, LoadResult
from .layers import (
    ELU,
    GELU,
    Activation,
    AvgPool2D,
    BatchNorm1d,
    BatchNorm2d,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    LayerNorm,
    LeakyReLU,
    LogSoftmax,
    MaxPool2D,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HalfSquaredError,
    HuberLoss,
    L1Loss,
    Loss,
    MSELoss,
    NLLLoss,
)
from .model import LayerList, Model, Residual, Sequential
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .parameter import Parameter
from .schedulers import CosineAnnealingLR, ExponentialLR, LRScheduler, MultiStepLR, ReduceLROnPlateau, StepLR
from .serialization import load, save
from .summary import summarize
from .training import History, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "ELU",
    "GELU",
    "SGD",
    "Activation",
    "Adagrad",
    "Adam",
    "AdamW",
    "AvgPool2D",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BackwardBeforeForwardError",
    "BatchNorm1d",
    "BatchNorm2d",
    "CheckpointError",
    "Conv2D",
    "CosineAnnealingLR",
    "CrossEntropyLoss",
    "DTypeError",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "ExponentialLR",
    "Flatten",
    "GlobalAvgPool2D",
    "GradientCheckError",
    "GradientChecker",
    "GradientReport",
    "HalfSquaredError",
    "History",
    "HuberLoss",
    "IndexRangeError",
    "L1Loss",
    "LRScheduler",
    "Layer",
    "LayerList",
    "LayerNorm",
    "LeakyReLU",
    "LoadResult",
    "LogSoftmax",
    "Loss",
    "MSELoss",
    "MaxPool2D",
    "MinidlError",
    "Model",
    "MultiStepLR",
    "NLLLoss",
    "NonDeterministicError",
    "NonFiniteError",
    "Optimizer",
    "Parameter",
    "RMSprop",
    "ReLU",
    "ReduceLROnPlateau",
    "Residual",
    "Sequential",
    "ShapeError",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "StateDictError",
    "StepLR",
    "Tanh",
    "TargetError",
    "TensorResult",
    "clip_grad_norm_",
    "clip_grad_value_",
    "evaluate",
    "fit",
    "load",
    "predict",
    "save",
    "summarize",
]
