"""Readers (and writers, for tests and synthetic data) of the seed data sets' file formats.

Every reader names the file and the place (byte offset, line, record) in its errors and never
drops input silently. The parsing runs in the Rust core.

* :func:`read_image_features`, :class:`ImageFeatures` - McAuley's ``image_features_*.b``,
  memory-mapped; :func:`write_image_features` writes the layout.
* :func:`read_amazon_metadata`, :func:`compatibility_pairs` - ``meta_*.json.gz``;
  :func:`write_amazon_metadata` writes both layouts; :func:`parse_literal` - Python literals
  and JSON without ``eval``.
* :func:`write_dvbpr` - a DVBPR ``*ImgPartitioned.npy`` file in the real layout.
* :func:`convert_inception_weights` - torchvision Inception v3 weights to the safetensors file
  the Inception tower reads (torch at conversion time only; nothing is downloaded).
* :func:`read_interactions_csv` (with :class:`CsvReport`), :func:`read_id_list` - delimited
  interaction files and id lists, parsed in Rust (in parallel when unquoted).
"""

from ._amazon import (
    CompatibilityPairs,
    compatibility_pairs,
    parse_literal,
    read_amazon_metadata,
    write_amazon_metadata,
)
from ..inception import convert_inception_weights
from ._dvbpr import write_dvbpr
from ._features import ImageFeatures, read_image_features, write_image_features
from ._tabular import CsvReport, read_id_list, read_interactions_csv

__all__ = [
    "CompatibilityPairs",
    "CsvReport",
    "ImageFeatures",
    "compatibility_pairs",
    "convert_inception_weights",
    "parse_literal",
    "read_amazon_metadata",
    "read_id_list",
    "read_image_features",
    "read_interactions_csv",
    "write_amazon_metadata",
    "write_dvbpr",
    "write_image_features",
]
