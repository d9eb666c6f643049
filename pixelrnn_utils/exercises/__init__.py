"""Check cells for the exercises at the end of the notebooks.

Every ``check_*`` function takes the learner's answer (a number, a tensor or a function), prints one
line that says whether it is right, with a hint when it is not, and returns ``True`` or ``False``.
An answer left at ``None`` (or a function that still returns ``None``) counts as not attempted.
The references the answers are checked against are the package's own functions.

One module per notebook, named after it: ``nb01_data_quantization``, ``nb02_masked_convolutions``,
``nb03_row_lstm``, ``nb04_diagonal_bilstm``, ``nb05_training_gpu``, ``nb06_sampling``,
``nb07_comparing_architectures``, ``nb08_binarized_mnist``, ``nb09_multiscale_conditional``,
``nb10_gated_pixelcnn``;
``feedback`` prints the one-line verdict they all share. Every check is re-exported here, so a
notebook writes ``from pixelrnn_utils.exercises import check_...``.
"""

from .nb01_data_quantization import (
    check_bits_per_dim_from_nats,
    check_bits_per_dim_from_unit_scale,
    check_most_common_value,
    check_requantize,
)
from .nb02_masked_convolutions import check_make_mask, check_mask_a_context, check_mask_b
from .nb03_row_lstm import (
    check_lstm_update,
    check_lstm_update_torch_order,
    check_row_lstm_steps,
    check_row_step,
    check_triangle_width,
)
from .nb04_diagonal_bilstm import (
    check_shift_down,
    check_skew,
    check_skewed_width,
    check_unskew,
    shift_down,
)
from .nb05_training_gpu import (
    check_bits_per_dim_to_loss_per_pixel,
    check_cosine_halfway,
    check_steps_per_epoch,
    check_train_step,
)
from .nb06_sampling import (
    check_completion_steps,
    check_draw,
    check_naive_sampler,
    check_temperature_probability,
)
from .nb07_comparing_architectures import (
    check_images_in_equal_time,
    check_sequential_steps,
    check_skip_parameters,
)
from .nb08_binarized_mnist import (
    check_independent_pixels,
    check_nats_per_image,
    check_pixel_nll,
    check_uniform_nats,
    independent_pixels_nll,
    per_pixel_nll,
)
from .nb09_multiscale_conditional import (
    check_classify,
    check_label_mixture,
    check_multiscale_nll,
)
from .nb10_gated_pixelcnn import (
    check_discretized_logistic,
    check_gate,
    check_polyak,
    check_stack_masks,
)

__all__ = [
    "check_bits_per_dim_from_nats",
    "check_bits_per_dim_from_unit_scale",
    "check_requantize",
    "check_most_common_value",
    "check_mask_b",
    "check_mask_a_context",
    "check_make_mask",
    "check_lstm_update",
    "check_lstm_update_torch_order",
    "check_row_step",
    "check_row_lstm_steps",
    "check_triangle_width",
    "check_skew",
    "check_skewed_width",
    "check_unskew",
    "check_shift_down",
    "shift_down",
    "check_bits_per_dim_to_loss_per_pixel",
    "check_steps_per_epoch",
    "check_cosine_halfway",
    "check_train_step",
    "check_draw",
    "check_temperature_probability",
    "check_completion_steps",
    "check_naive_sampler",
    "check_sequential_steps",
    "check_skip_parameters",
    "check_images_in_equal_time",
    "check_nats_per_image",
    "check_uniform_nats",
    "check_independent_pixels",
    "independent_pixels_nll",
    "check_pixel_nll",
    "per_pixel_nll",
    "check_label_mixture",
    "check_multiscale_nll",
    "check_classify",
    "check_stack_masks",
    "check_gate",
    "check_polyak",
    "check_discretized_logistic",
]
