"""Built-in layers."""

from .activations import (
    ELU,
    GELU,
    Activation,
    LeakyReLU,
    LogSoftmax,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .attention import MultiHeadAttention
from .conv import Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout, Dropout1d, Dropout2d
from .embedding import Embedding
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
from .pooling import AvgPool1D, AvgPool2D, GlobalAvgPool1D, GlobalAvgPool2D, MaxPool1D, MaxPool2D
from .recurrent import GRU, LSTM, RNN
from .reshape import Flatten
from .transformer import TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer
from .upsampling import ConvTranspose2D, Upsample

__all__ = [
    "ELU",
    "GELU",
    "GRU",
    "LSTM",
    "RNN",
    "Activation",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1D",
    "Conv2D",
    "ConvTranspose2D",
    "Dense",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Embedding",
    "Flatten",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GroupNorm",
    "InstanceNorm2d",
    "LayerNorm",
    "LeakyReLU",
    "LogSoftmax",
    "MaxPool1D",
    "MaxPool2D",
    "MultiHeadAttention",
    "PReLU",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "Upsample",
]
