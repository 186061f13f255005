"""Issue 14, the model's side: values that overflow float32, small training sets, training
that diverges, the scoring memory of the convolutional model, and checks on load."""

import math

import numpy as np
import pytest

from vae_anomaly.model import VAE
from vae_anomaly.scoring import SCORING_MEMORY_BYTES, scoring_batch_rows, scoring_row_bytes
from vae_anomaly.tabular.schema import TabularSchema

# ----------------------------------------------------------------------------- item 15


def _decoder_feature_map_elements(model: VAE) -> int:
    """Values of the decoder's feature maps per z, measured by running its layers."""
    decoder = model.decoder
    start = (1, decoder.start_height, decoder.start_width, decoder.filters[-1])
    images, total = np.zeros(start, dtype=np.float32), 0
    for layer in decoder.convolutions:
        images = layer(images)
        total += math.prod(images.shape[1:])
    return total


def test_the_scoring_batch_of_a_convolutional_model_fits_the_working_memory():
    model = VAE(
        784,
        8,
        (512, 256),
        likelihood="continuous_bernoulli",
        image_shape=(28, 28, 1),
        conv_filters=(16, 32),
    )
    for k in (1, 16, 64):
        row_bytes = scoring_row_bytes(model, k)
        rows = scoring_batch_rows(model, k)
        assert rows == max(1, min(1024, SCORING_MEMORY_BYTES // row_bytes))
        # The per-row count includes the feature maps k times, measured from the layers.
        assert row_bytes >= 4 * k * _decoder_feature_map_elements(model)
        assert rows * row_bytes <= SCORING_MEMORY_BYTES
    # 28 x 28 x 16 (the last feature map) x 16 samples: 7 rows fit in 16 MiB, not 334.
    assert scoring_batch_rows(model, 16) < 10


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"name": "x", "role": "numerik", "levels": []},
            r"Column 'x': role must be one of \['numeric', 'categorical', 'boolean', "
            r"'passthrough', 'ignore'\], got 'numerik'",
        ),
        ({"name": "x", "role": "numeric", "levels": ["a"]}, "Column 'x': role 'numeric' takes"),
        ({"name": "x", "role": "categorical", "levels": []}, "Column 'x': a categorical column"),
        ({"name": "x", "role": "categorical", "levels": ["a", "a"]}, "needs distinct levels"),
        ({"name": "x", "role": "categorical", "levels": [1, 2]}, "levels must be a list of texts"),
        ({"role": "numeric", "levels": []}, "Schema column 1: needs a 'name'"),
    ],
)
def test_schema_from_dict_names_the_column_of_a_bad_entry(entry, message):
    good = {"name": "y", "role": "numeric", "levels": [], "reason": ""}
    with pytest.raises(ValueError, match=message):
        TabularSchema.from_dict({"columns": [good, entry]})
