"""pixelrnn_utils: the package behind the PixelRNN course (van den Oord et al., 2016).

One module per concept: ``data`` and ``metrics`` (notebook 01), ``masks``, ``causality`` and
``pixelcnn`` (02), ``row_lstm`` and ``model`` (03), ``diagonal_bilstm`` (04), ``train`` and
``checkpoint`` (05), ``sampling`` and ``viz`` (06), ``model.sequential_steps`` (07),
``conditioning`` and ``multiscale`` (09); ``progress``
(progress bars for terminals and notebooks) and ``exercises`` (the notebooks' check cells) serve
them all. The names most used are re-exported here.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .data import load_dataset, make_loader, split_dataset
from .metrics import bits_per_dim
from .model import build_model
from .sampling import sample

__all__ = [
    "bits_per_dim",
    "build_model",
    "load_checkpoint",
    "load_dataset",
    "make_loader",
    "sample",
    "save_checkpoint",
    "split_dataset",
]
__version__ = "0.1.0"
